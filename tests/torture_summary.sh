#!/bin/sh
# torture_summary.sh — the summary at the end of `make torture`.
#
#   sh tests/torture_summary.sh LOG STATUS [--all] SOURCE...
#
# LOG is what the test runner printed, STATUS its exit status. The tests
# print lines "figure: <kind> <n> <what>" (tests/torture.h); this adds them
# up per kind: kill -9 cycles, deaths at each named kill point, faults
# injected, violations, and any other kind as it comes. The named kill points
# are those the library's SOURCE files pass (slKillPoint("name")); with --all
# (the whole suite ran) every one of them must have been hit at least once.
# Exits 0 when the runner passed, no violation was counted and (with --all)
# every kill point was hit; 1 otherwise.
set -eu

if [ $# -lt 2 ]; then
  echo "usage: sh tests/torture_summary.sh LOG STATUS [--all] SOURCE..." >&2
  exit 2
fi
log=$1
status=$2
shift 2
all=0
if [ "${1:-}" = "--all" ]; then
  all=1
  shift
fi

points=$(cat "$@" /dev/null | sed -n 's/.*slKillPoint("\([A-Za-z0-9_]*\)").*/\1/p' | sort -u | tr '\n' ' ')

awk -v points="$points" -v all="$all" -v status="$status" '
  $1 == "figure:" && NF >= 4 && $3 ~ /^[0-9]+$/ {
    kind = $2; n = $3 + 0; what = $4
    total[kind] += n
    if (!(kind in seen)) { seen[kind] = 1; kinds[++nkinds] = kind }
    key = kind SUBSEP what
    if (!(key in per)) { whats[kind] = whats[kind] (whats[kind] == "" ? "" : "\t") what }
    per[key] += n
    next
  }
  /^[0-9]+ passed, [0-9]+ failed$/ { verdict = $0 }
  function list(kind,   a, k, i, s) {
    k = split(whats[kind], a, "\t")
    s = ""
    for (i = 1; i <= k; i++) s = s (i > 1 ? ", " : "") a[i] " " per[kind SUBSEP a[i]]
    return s
  }
  END {
    bad = 0
    print "== make torture: summary"
    printf "tests:            %s (runner exit status %s)\n", verdict == "" ? "no verdict line" : verdict, status
    if (status != 0) bad = 1
    printf "kill -9 cycles:   %d%s\n", total["cycles"], ("cycles" in seen) ? " (" list("cycles") ")" : ""
    np = split(points, p, " ")
    hit = 0; missing = ""
    for (i = 1; i <= np; i++) {
      if (per["kill_point" SUBSEP p[i]] > 0) hit++
      else missing = missing " " p[i]
    }
    printf "kill points:      %d of %d hit, %d deaths%s\n", hit, np, total["kill_point"],
           ("kill_point" in seen) ? " (" list("kill_point") ")" : ""
    if (missing != "") {
      printf "                  never hit:%s%s\n", missing, all ? "" : " (not every test ran)"
      if (all) bad = 1
    }
    printf "faults injected:  %d%s\n", total["faults"], ("faults" in seen) ? " (" list("faults") ")" : ""
    printf "violations:       %d%s\n", total["violations"], ("violations" in seen) ? " (" list("violations") ")" : ""
    if (total["violations"] > 0) bad = 1
    for (i = 1; i <= nkinds; i++) {
      k = kinds[i]
      if (k == "cycles" || k == "kill_point" || k == "faults" || k == "violations") continue
      printf "%-17s %d (%s)\n", k ":", total[k], list(k)
    }
    print bad ? "make torture: FAILED" : "make torture: passed"
    exit bad
  }
' "$log"
