#!/usr/bin/env bash
# run.sh — runs the benchmark sections and writes bench/RESULTS.md.
#
# Every figure is RUNS runs (default 5), each in a process of its own, the
# engines of a section taking turns within each round (A B C, A B C, ...)
# so that drift of the machine hits all of them alike. RESULTS.md gives the
# median with the minimum and maximum, and ratios of medians with the range
# of the per-round ratios.
#
# Sections, in the order they run:
#   checkpoint  bench_checkpoint, statelite and RocksDB, CHK_KEYS keys
#               (default 1000000), CHK_INTERVALS checkpoints (default 10)
#   pipeline    bench_pipeline, PIPE_RECORDS (6000000), parallelism PIPE_PARS
#   value-*     bench_value ValueState at size A (2M records over 100k keys,
#               64 MiB budget) and B (5M records over 2M keys, 8 MiB budget),
#               uniform and Zipf keys
#   map-*, list-*  MapState and ListState, the same four shapes
# The first two run at fixed sizes. The others share the time that is left
# of TIME_LIMIT (default 560 s, counted from the start of the `make` that
# runs this script, so that the build counts too) by fixed weights: a pilot
# run per engine (PILOT records, default 20000) predicts how long a round
# takes, and a section that would not fit its share runs with fewer records;
# RESULTS.md says so, with the command for the full size. At size B the
# value sections then start from a state of all 2M keys (bench_value --base),
# so that the state is as large as in the full run although the stream is
# shorter.
#
# Environment: RUNS, TIME_LIMIT, PILOT, SEED (42), CHECKPOINT_MS (1000),
# FULL=1 (every section at the issue's full size, no pilot, no time limit,
# no base state; takes far longer), TMPDIR, and the sizes above.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-5}
SEED=${SEED:-42}
FULL=${FULL:-0}
TIME_LIMIT=${TIME_LIMIT:-560}
CHECKPOINT_MS=${CHECKPOINT_MS:-1000}
PILOT=${PILOT:-10000}
BIN=build/bench_value
RBIN=build/bench_value_rocksdb
CHK_BIN=build/bench_checkpoint
PIPE_BIN=build/bench_pipeline
CHK_KEYS=${CHK_KEYS:-1000000}
CHK_INTERVALS=${CHK_INTERVALS:-10}
if [ "$FULL" = 1 ]; then PIPE_RECORDS=${PIPE_RECORDS:-20000000}; else PIPE_RECORDS=${PIPE_RECORDS:-6000000}; fi
PIPE_PARS=${PIPE_PARS:-1 2}
PIPE_KEYS=100000
# a budget per instance that holds the counter's 100,000 keys (the store's
# default; the job's own default, 8 MiB, is for small devices and holds about
# half of them, so the counter would spend its time evicting)
PIPE_BUDGET=33554432
A_RECORDS=${A_RECORDS:-2000000} A_KEYS=${A_KEYS:-100000} A_BUDGET=64M A_BUDGET_MIB=64
# MapState and ListState hold 8 entries (rows) per key: their working set at
# size A fits a larger budget (about 100 MiB of statelite's cache with the
# room a checkpoint's copy needs)
A_ML_BUDGET=256M A_ML_BUDGET_MIB=256
B_RECORDS=${B_RECORDS:-5000000} B_KEYS=${B_KEYS:-2000000} B_BUDGET=8M B_BUDGET_MIB=8
CC=${CC:-cc}

for b in "$BIN" "$RBIN" "$CHK_BIN" "$PIPE_BIN"; do
  [ -x "$b" ] || { echo "run.sh: $b is missing; run make -C bench build first." >&2; exit 1; }
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/statelite-bench-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
kv=$scratch/kv.txt          # section|label|round|key=value line of a run
pilots=$scratch/pilots.txt  # the same for pilot runs (not in the figures)
notes=$scratch/notes.txt    # sentences for RESULTS.md
loads=$scratch/loads.txt    # 1-minute load average after each run
: > "$kv"; : > "$pilots"; : > "$notes"; : > "$loads"

now() { echo "$EPOCHREALTIME"; }
# fsub A B -> A - B (floats); fmt1 X -> X with one decimal
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fint() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }

# When did the outermost `make` above this script start? (The build before
# this script is part of the time `make bench` takes.) Empty if not run
# from make.
make_start() {
  local pid=$$ ppid comm best="" btime hz st
  btime=$(awk '/^btime/ { print $2 }' /proc/stat 2>/dev/null) || return 0
  hz=$(getconf CLK_TCK)
  while [ "${pid:-0}" -gt 1 ] && [ -r "/proc/$pid/stat" ]; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    # Fields after the ")" that closes the command name: 2 is the parent,
    # 20 the start time in clock ticks since boot.
    read -r ppid st <<<"$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $2, $20 }')"
    if [ "$comm" = make ] || [ "$comm" = gmake ]; then
      best=$(awk -v b="$btime" -v s="$st" -v h="$hz" 'BEGIN { printf "%.2f", b + s / h }')
    fi
    pid=$ppid
  done
  echo "$best"
}

run_start=$(now)
make_t0=$(make_start)
[ -n "$make_t0" ] || make_t0=$run_start
build_secs=$(fint "$(fsub "$run_start" "$make_t0")")
# Writing RESULTS.md takes a few seconds after the last run.
deadline_all=$(awk -v t="$make_t0" -v l="$TIME_LIMIT" 'BEGIN { printf "%.3f", t + l - 10 }')

# The RocksDB version (from its header), and its default block cache: 8 MiB
# before RocksDB 8, 32 MiB since.
rocksdb_hdr=$(printf '#include <rocksdb/c.h>\n' | $CC -M -x c - 2>/dev/null |
  tr -s ' \\' '\n' | grep '/rocksdb/c\.h$' | head -n1 || true)
rocksdb_version=unknown
rocksdb_major=0
if [ -n "$rocksdb_hdr" ] && [ -f "$(dirname "$rocksdb_hdr")/version.h" ]; then
  rocksdb_version=$(awk '/#define ROCKSDB_(MAJOR|MINOR|PATCH) /{ v[$2] = $3 }
    END { print v["ROCKSDB_MAJOR"] "." v["ROCKSDB_MINOR"] "." v["ROCKSDB_PATCH"] }' \
    "$(dirname "$rocksdb_hdr")/version.h")
  rocksdb_major=${rocksdb_version%%.*}
fi
rocksdb_default_cache_mib=8
[ "$rocksdb_major" -ge 8 ] 2>/dev/null && rocksdb_default_cache_mib=32

# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

# run_kv FILE SECTION LABEL ROUND COMMAND... -> appends the program's line
# (plus run_wall=seconds) to FILE; last_out holds it.
run_kv() {
  local file=$1 section=$2 label=$3 round=$4 out t0 t1; shift 4
  t0=$(now)
  if ! out=$("$@" --dir "$scratch"); then
    echo "run.sh: $label ($section) failed: $*" >&2
    exit 1
  fi
  t1=$(now)
  if ! grep -q 'verified=ok' <<<"$out"; then
    echo "run.sh: $label ($section) printed no verified result: $out" >&2
    exit 1
  fi
  last_out="$out run_wall=$(fsub "$t1" "$t0")"
  echo "$section|$label|$round|$last_out" >> "$file"
  cut -d' ' -f1 /proc/loadavg >> "$loads" 2>/dev/null || true
}

# field NAME <<< line -> the value of NAME=
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# The statistics, computed once all runs are done (load_stats): STAT holds
# "median min max" per "section|label|field", VAL the value per
# "section|label|round|field".
declare -A STAT=() VAL=()
load_stats() {
  local key a b c
  while IFS='#' read -r kind key a b c; do
    if [ "$kind" = S ]; then STAT[$key]="$a $b $c"; else VAL[$key]=$a; fi
  done < <(awk -F'|' '
    { n = split($4, kv, " ")
      for (i = 1; i <= n; i++) {
        e = index(kv[i], "="); if (!e) continue
        f = substr(kv[i], 1, e - 1); v = substr(kv[i], e + 1)
        if (v !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) continue
        k = $1 "|" $2 "|" f
        cnt[k]++; vals[k, cnt[k]] = v + 0
        print "V#" $1 "|" $2 "|" $3 "|" f "#" v
      } }
    END {
      for (k in cnt) {
        m = cnt[k]
        for (i = 1; i <= m; i++) x[i] = vals[k, i]
        for (i = 2; i <= m; i++) { t = x[i]; j = i - 1
          while (j >= 1 && x[j] > t) { x[j + 1] = x[j]; j-- }
          x[j + 1] = t }
        med = (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
        printf "S#%s#%.6g#%.6g#%.6g\n", k, med, x[1], x[m]
      } }' "$kv")
}

# kvstat SECTION LABEL FIELD -> "median min max" of FIELD over the rounds
kvstat() { echo "${STAT["$1|$2|$3"]:-- - -}"; }

# kvratio SECTION A B FIELD -> "ratio_of_medians min_round_ratio max_round_ratio"
kvratio() {
  local ma mb r pairs=""
  ma=${STAT["$1|$2|$4"]:-}
  mb=${STAT["$1|$3|$4"]:-}
  for r in $(seq 1 "$RUNS"); do
    pairs="$pairs ${VAL["$1|$2|$r|$4"]:-x}/${VAL["$1|$3|$r|$4"]:-x}"
  done
  awk -v ma="${ma%% *}" -v mb="${mb%% *}" -v pairs="$pairs" 'BEGIN {
    n = split(pairs, p, " "); lo = ""; hi = ""
    for (i = 1; i <= n; i++) {
      split(p[i], ab, "/")
      if (ab[1] == "x" || ab[2] == "x" || ab[2] + 0 <= 0) continue
      x = ab[1] / ab[2]
      if (lo == "" || x < lo) lo = x
      if (hi == "" || x > hi) hi = x
    }
    if (ma == "" || mb + 0 <= 0 || lo == "") { print "- - -"; exit }
    printf "%.3g %.3g %.3g\n", ma / mb, lo, hi }'
}

# fmt_int 1234567.8 -> 1,234,568
fmt_int() {
  local s out=""
  if [ "$1" = - ]; then echo -; return; fi
  printf -v s '%.0f' "$1"
  while [ ${#s} -gt 3 ]; do out=",${s: -3}$out"; s=${s:0:${#s}-3}; done
  echo "$s$out"
}

# ---------------------------------------------------------------------------
# The state sections: engines, shapes, weights
# ---------------------------------------------------------------------------

# engine_cmd LABEL SIZE [STATE] -> the program and the engine's options
engine_cmd() {
  local budget=$A_BUDGET
  [ "$2" = B ] && budget=$B_BUDGET
  [ "$2" = A ] && [ "${3:-value}" != value ] && budget=$A_ML_BUDGET
  case $1 in
    statelite) echo "$BIN statelite --budget $budget" ;;
    statelite-nocache) echo "$BIN statelite-nocache" ;;
    hash) echo "$BIN hash" ;;
    sqlite) echo "$BIN sqlite --page-cache $budget" ;;
    rocksdb) echo "$RBIN rocksdb" ;;
    rocksdb-*MiB) echo "$RBIN rocksdb --block-cache $budget" ;;
  esac
}

# base_of LABEL -> the base state directory of that engine (size B, value)
base_of() {
  case $1 in
    statelite*) echo "$scratch/base/statelite" ;;
    sqlite) echo "$scratch/base/sqlite" ;;
    rocksdb*) echo "$scratch/base/rocksdb" ;;
    hash) echo "-" ;;
  esac
}

declare -A sec_state=() sec_size=() sec_dist=() sec_weight=() sec_engines=() sec_records=() \
  sec_nominal=() sec_base=() sec_secs=() sec_cmds=() sec_pilot=()
state_sections=()
add_section() { # NAME STATE SIZE DIST WEIGHT ENGINES...
  local name=$1
  state_sections+=("$name")
  sec_state[$name]=$2; sec_size[$name]=$3; sec_dist[$name]=$4; sec_weight[$name]=$5
  shift 5
  sec_engines[$name]="$*"
}
rocks_a="rocksdb rocksdb-${A_BUDGET_MIB}MiB"
rocks_aml="rocksdb rocksdb-${A_ML_BUDGET_MIB}MiB"
rocks_b=rocksdb
# A block cache of the budget is RocksDB's default at size B before RocksDB 8.
[ "$rocksdb_default_cache_mib" -ne "$B_BUDGET_MIB" ] && rocks_b="rocksdb rocksdb-${B_BUDGET_MIB}MiB"
add_section value-A-uniform value A uniform 16 statelite hash sqlite $rocks_a statelite-nocache
add_section value-A-zipf value A zipf 12 statelite hash sqlite $rocks_a
add_section value-B-uniform value B uniform 16 statelite hash sqlite $rocks_b
add_section value-B-zipf value B zipf 12 statelite hash sqlite $rocks_b
for st in map list; do
  add_section $st-A-uniform $st A uniform 6 statelite hash sqlite $rocks_aml
  add_section $st-A-zipf $st A zipf 5 statelite hash sqlite $rocks_aml
  add_section $st-B-uniform $st B uniform 6 statelite hash sqlite $rocks_b
  add_section $st-B-zipf $st B zipf 5 statelite hash sqlite $rocks_b
done

# wargs SECTION LABEL -> the workload options of that engine in that section
wargs() {
  local s=$1 keys=$A_KEYS a
  [ "${sec_size[$s]}" = B ] && keys=$B_KEYS
  a="--state ${sec_state[$s]} --keys $keys --seed $SEED --checkpoint-ms $CHECKPOINT_MS"
  [ "${sec_dist[$s]}" = zipf ] && a="$a --zipf 1.1"
  [ "${sec_base[$s]:-0}" = 1 ] && a="$a --base $(base_of "$2")"
  echo "$a"
}

# run_state_section NAME DEADLINE
run_state_section() {
  local s=$1 deadline=$2 nominal=$A_RECORDS records label round k total t0 t1 predicted fixed=0
  local attempt rescaled
  local -a engines
  read -r -a engines <<<"${sec_engines[$s]}"
  [ "${sec_size[$s]}" = B ] && nominal=$B_RECORDS
  sec_nominal[$s]=$nominal
  records=$nominal
  t0=$(now)
  if [ "$FULL" != 1 ]; then
    # The pilot: one short run per engine. Per engine, the time of a run is
    # taken as fixed (start, copy of the base, final checkpoint, read-back:
    # run_wall - seconds) plus seconds per record times the records.
    local p=$PILOT
    [ "$p" -gt "$nominal" ] && p=$nominal
    for label in "${engines[@]}"; do
      # shellcheck disable=SC2046
      run_kv "$pilots" "$s" "$label" pilot $(engine_cmd "$label" "${sec_size[$s]}" "${sec_state[$s]}") \
        --records "$p" $(wargs "$s" "$label")
    done
    read -r records predicted fixed <<<"$(awk -F'|' -v s="$s" -v p="$p" -v runs="$RUNS" \
      -v left="$(fsub "$deadline" "$(now)")" -v nominal="$nominal" '
      function get(line, name,   n, i, kv) {
        n = split(line, kv, " ")
        for (i = 1; i <= n; i++) if (index(kv[i], name "=") == 1) return substr(kv[i], length(name) + 2)
        return 0
      }
      $1 == s { w = get($4, "run_wall"); t = get($4, "seconds"); fixed += w - t; per += t / p }
      END {
        per *= 1.6    # the state grows with the stream, and the machine may get busier
        full = runs * (fixed + per * nominal)
        r = (left / runs - fixed) / per
        if (r >= nominal) r = nominal
        else if (r >= 100000) r = int(r / 10000) * 10000
        else if (r >= 10000) r = int(r / 1000) * 1000
        else r = 10000
        printf "%d %.0f %.3f\n", r, full, fixed }' "$pilots")"
    if [ "$records" -lt "$nominal" ]; then
      echo "run.sh: $s: $RUNS rounds of $nominal records would take about ${predicted} s; running $records records per run." >&2
      local share
      share=$(fint "$(fsub "$deadline" "$t0")")
      if [ "$share" -gt 0 ]; then share="its share of the time limit was $share s"
      else share="the sections before it had used up its share of the time limit (it ran with the smallest size, 10,000 records)"; fi
      sec_pilot[$s]="the pilot runs ($(fmt_int "$p") records per engine) predicted about ${predicted} s for $RUNS rounds at the full $(fmt_int "$nominal") records, and $share"
    fi
  fi
  total=$((RUNS * ${#engines[@]}))
  for attempt in 1 2; do
    k=0
    for round in $(seq 1 "$RUNS"); do
      t1=$(now)
      for label in "${engines[@]}"; do
        k=$((k + 1))
        printf '[%-16s %2d/%d] %-18s ... ' "$s" "$k" "$total" "$label"
        # shellcheck disable=SC2046
        run_kv "$kv" "$s" "$label" "$round" $(engine_cmd "$label" "${sec_size[$s]}" "${sec_state[$s]}") \
          --records "$records" $(wargs "$s" "$label")
        printf '%12s rec/s  %12s rec/s e2e  (%s s)\n' "$(field ops_per_sec <<<"$last_out")" \
          "$(field e2e_ops_per_sec <<<"$last_out")" "$(field run_wall <<<"$last_out")"
      done
      # After the first round: would the others overrun the share by more
      # than a quarter (the pilot can misjudge a state that grows)? Then
      # start again with fewer records, scaled by what the round took.
      if [ "$FULL" != 1 ] && [ "$round" = 1 ] && [ "$attempt" = 1 ] && [ "$RUNS" -gt 1 ] &&
         [ "$records" -gt 10000 ]; then
        rescaled=$(awk -v took="$(fsub "$(now)" "$t1")" -v left="$(fsub "$deadline" "$(now)")" \
          -v runs="$RUNS" -v fixed="$fixed" -v r="$records" 'BEGIN {
            per = left / (runs - 1)
            if (took <= 1.25 * per) { print 0; exit }
            n = r * (per - fixed) / (took - fixed)
            if (n >= 100000) n = int(n / 10000) * 10000
            else if (n >= 10000) n = int(n / 1000) * 1000
            else n = 10000
            if (n > 0.8 * r) { print 0; exit }
            printf "%d %.0f\n", n, took }')
        if [ "$rescaled" != 0 ]; then
          read -r rescaled took <<<"$rescaled"
          echo "run.sh: $s: the first round of $records records took ${took} s, more than the share allows; starting again with $rescaled records." >&2
          sec_pilot[$s]="${sec_pilot[$s]:-the section did not fit its share}; then its first round at $(fmt_int "$records") records took ${took} s, more than the rest of the share allowed for each round, so it was started again with $(fmt_int "$rescaled") records (that round is not in the figures)"
          grep -v "^$s|" "$kv" > "$kv.tmp" || true
          mv "$kv.tmp" "$kv"
          records=$rescaled
          continue 2
        fi
      fi
    done
    break
  done
  sec_records[$s]=$records
  sec_secs[$s]=$(fint "$(fsub "$(now)" "$t0")")
  sec_cmds[$s]=$(for label in "${engines[@]}"; do
    echo "./$(engine_cmd "$label" "${sec_size[$s]}" "${sec_state[$s]}") --records $records $(wargs "$s" "$label" | sed "s|$scratch/base|base|")"
  done)
}

# The base states, built side by side before anything is measured: for the
# checkpoint section the filled stores of CHK_KEYS keys, and (unless FULL=1)
# for the value sections of size B every key at count 0.
build_bases() {
  local t0 pids=() pid label keys
  t0=$(now)
  mkdir -p "$scratch/base"
  for keys in $CHK_KEYS; do
    for label in statelite rocksdb; do
      "$CHK_BIN" --engine "$label" --keys "$keys" --dir "$scratch" \
        --build-base "$scratch/base/chk-$label-$keys" > /dev/null &
      pids+=($!)
    done
  done
  if [ "$FULL" != 1 ]; then
    for label in statelite sqlite rocksdb; do
      # shellcheck disable=SC2046
      $(engine_cmd "$label" B | awk '{ print $1, $2 }') --keys "$B_KEYS" \
        --build-base "$(base_of "$label")" > /dev/null &
      pids+=($!)
    done
  fi
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "run.sh: building a base state failed" >&2; exit 1; }
  done
  base_secs=$(fint "$(fsub "$(now)" "$t0")")
  base_bytes=
  [ "$FULL" != 1 ] && base_bytes=$(du -sb "$scratch/base/statelite" "$scratch/base/sqlite" \
    "$scratch/base/rocksdb" | awk '{ printf "%s%.1f MiB", (NR > 1 ? ", " : ""), $1 / 1048576 }')
  echo "== base states built in ${base_secs}s${base_bytes:+ (size B: $base_bytes)}"
}

# ---------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------

if [ "$FULL" = 1 ]; then
  echo "== statelite benchmarks at full size (FULL=1): $RUNS rounds per figure; the build took ${build_secs}s"
else
  echo "== statelite benchmarks: $RUNS rounds per figure; the build took ${build_secs}s; time limit ${TIME_LIMIT}s from the start of make"
fi

build_bases

chk_start=$(now)
echo "== checkpoints of a store: $CHK_KEYS keys, $CHK_INTERVALS checkpoints, 1% changed"
for round in $(seq 1 "$RUNS"); do
  for keys in $CHK_KEYS; do
    for eng in statelite rocksdb; do
      printf '[checkpoint] %-9s %8s keys round %d/%d ... ' "$eng" "$keys" "$round" "$RUNS"
      run_kv "$kv" checkpoint "$eng-$keys" "$round" "$CHK_BIN" --engine "$eng" --keys "$keys" \
        --intervals "$CHK_INTERVALS" --seed "$SEED" --base "$scratch/base/chk-$eng-$keys"
      echo "sync_p99_ms=$(field sync_p99_ms <<<"$last_out") bytes=$(field bytes_median <<<"$last_out")"
    done
  done
done
chk_secs=$(fint "$(fsub "$(now)" "$chk_start")")

pipe_start=$(now)
echo "== SDK pipeline: $PIPE_RECORDS records, counter parallelism $PIPE_PARS"
for round in $(seq 1 "$RUNS"); do
  for par in $PIPE_PARS; do
    printf '[pipeline] parallelism %s round %d/%d ... ' "$par" "$round" "$RUNS"
    run_kv "$kv" pipeline "$par" "$round" "$PIPE_BIN" --records "$PIPE_RECORDS" --keys "$PIPE_KEYS" \
      --par "$par" --interval-ms "$CHECKPOINT_MS" --budget "$PIPE_BUDGET"
    field records_per_sec <<<"$last_out"
  done
done
pipe_secs=$(fint "$(fsub "$(now)" "$pipe_start")")

# The state sections share what is left by weight: each gets its weight's
# part of the time left when it starts, so that one that overran costs all
# the later ones a little instead of the next one everything.
weights=0
for s in "${state_sections[@]}"; do weights=$((weights + sec_weight[$s])); done
for s in "${state_sections[@]}"; do
  t=$(now)
  deadline=$(awk -v t="$t" -v end="$deadline_all" -v c="${sec_weight[$s]}" -v w="$weights" \
    'BEGIN { printf "%.3f", t + (end - t) * c / w }')
  weights=$((weights - sec_weight[$s]))
  if [ "$FULL" != 1 ] && [ "${sec_state[$s]}" = value ] && [ "${sec_size[$s]}" = B ]; then
    sec_base[$s]=1
  fi
  if [ "$FULL" = 1 ]; then echo "== $s: ${sec_engines[$s]}"
  else echo "== $s: ${sec_engines[$s]} (until +$(fint "$(fsub "$deadline" "$make_t0")") s)"; fi
  run_state_section "$s" "$deadline"
done

end_t=$(now)
elapsed=$(fint "$(fsub "$end_t" "$make_t0")")
runs_secs=$(fint "$(fsub "$end_t" "$run_start")")
echo "== all runs done: ${runs_secs}s of runs, ${elapsed}s since make started; writing RESULTS.md"
load_stats

# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1)
[ -n "$cpu" ] || cpu=$(uname -m)
mem_kb=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/meminfo 2>/dev/null)
ncpu=$(nproc)
load_range=$(sort -g "$loads" | awk '{ v[NR] = $1 } END { if (NR) print v[1] "–" v[NR]; else print "unknown" }')
load_max=$(sort -g "$loads" | tail -n1)
mem=$(awk -v k="${mem_kb:-0}" 'BEGIN { printf "%.1f GiB", k / 1048576 }')
cc_version=$($CC --version 2>/dev/null | head -n1)
versions=$("$BIN" --versions)
sqlite_version=${versions#*sqlite=}
statelite_version=${versions%% *}
statelite_version=${statelite_version#statelite=}
rocksdb_pkg=
if command -v dpkg-query >/dev/null 2>&1 &&
   pkg=$(dpkg-query -W -f='${Version}' librocksdb-dev 2>/dev/null) && [ -n "$pkg" ]; then
  rocksdb_pkg=" (Debian package librocksdb-dev $pkg)"
fi
fs_type=$(df -T "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 { print $2 }')

# ---------------------------------------------------------------------------
# RESULTS.md
# ---------------------------------------------------------------------------

mib() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.1f\n", x / 1048576 }'; }
kib_mib() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.1f\n", x / 1024 }'; }

# cell SECTION LABEL FIELD KIND -> "median (min–max)" formatted by KIND
cell() {
  local m lo hi
  read -r m lo hi <<<"$(kvstat "$1" "$2" "$3")"
  if [ "$4" = int ]; then
    echo "$(fmt_int "$m") ($(fmt_int "$lo")–$(fmt_int "$hi"))"
    return
  fi
  awk -v m="$m" -v a="$lo" -v b="$hi" -v k="$4" 'BEGIN {
    if (m == "-") { print "–"; exit }
    if (k == "sz") { # bytes, in a unit that suits the median
      u = "MiB"; d = 1048576
      if (m < 1048576) { u = "KiB"; d = 1024 }
      if (m < 1024) { u = "B"; d = 1 }
      printf "%.1f %s (%.1f–%.1f)\n", m / d, u, a / d, b / d
      exit
    }
    f = "%.1f"; d = 1
    if (k == "ms2") f = "%.2f"; else if (k == "n") f = "%g"; else if (k == "s3") f = "%.3f"
    else if (k == "kb") d = 1024; else if (k == "b") d = 1048576
    printf f " (" f "–" f ")\n", m / d, a / d, b / d }'
}

title_of() { # SECTION -> a title
  local s=$1 what shape
  case ${sec_state[$s]} in
    value) what="ValueState get + update" ;;
    map) what="MapState get + put" ;;
    list) what="ListState add (+ get and trim)" ;;
  esac
  if [ "${sec_size[$s]}" = A ]; then
    if [ "${sec_state[$s]}" = value ]; then
      shape="$(fmt_int "$A_KEYS") keys, ${A_BUDGET_MIB} MiB budget (fits)"
    else
      shape="$(fmt_int "$A_KEYS") keys, ${A_ML_BUDGET_MIB} MiB budget (fits)"
    fi
  else
    shape="$(fmt_int "$B_KEYS") keys, ${B_BUDGET_MIB} MiB budget (does not fit)"
  fi
  echo "$what, ${sec_dist[$s]/zipf/Zipf s = 1.1} keys, $shape"
}

# verdict X OP Y -> met / missed
verdict() { awk -v x="$1" -v y="$3" -v op="$2" 'BEGIN {
  if (x == "-" || x == "") { print "not measured"; exit }
  ok = (op == ">=") ? x >= y : x <= y; print ok ? "**met**" : "**missed**" }'; }
# verdict of a median, with a word when the worst run is on the other side
verdict_worst() { # MEDIAN OP GOAL WORST
  local v
  v=$(verdict "$1" "$2" "$3")
  if [ "$v" = "**met**" ] && [ "$(verdict "$4" "$2" "$3")" = "**missed**" ]; then
    v="**met** by the median; the worst run misses it"
  fi
  echo "$v"
}

state_table() { # SECTION
  local s=$1 label b r lo hi r2 lo2 hi2
  echo "| engine | records/s processing | records/s end to end | checkpoints | pause p50 ms | pause p99 ms | pause max ms | peak RSS MiB | state at the end MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for label in ${sec_engines[$s]}; do
    if [ "$label" = hash ]; then
      printf '| %s | %s | %s | none | – | – | – | %s | %s |\n' "$label" \
        "$(cell "$s" "$label" ops_per_sec int)" "$(cell "$s" "$label" e2e_ops_per_sec int)" \
        "$(cell "$s" "$label" peak_rss_kb kb)" "$(mib "$(kvstat "$s" "$label" state_bytes | cut -d' ' -f1)")"
    else
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
        "$(cell "$s" "$label" ops_per_sec int)" "$(cell "$s" "$label" e2e_ops_per_sec int)" \
        "$(cell "$s" "$label" checkpoints n)" "$(cell "$s" "$label" pause_p50_ms ms)" \
        "$(cell "$s" "$label" pause_p99_ms ms)" "$(cell "$s" "$label" pause_max_ms ms)" \
        "$(cell "$s" "$label" peak_rss_kb kb)" "$(mib "$(kvstat "$s" "$label" state_bytes | cut -d' ' -f1)")"
    fi
  done
  echo
  echo "Ratios of the medians, processing rate and end-to-end rate (the range of the per-round ratios in brackets):"
  echo
  for b in ${sec_engines[$s]}; do
    [ "$b" = statelite ] && continue
    read -r r lo hi <<<"$(kvratio "$s" statelite "$b" ops_per_sec)"
    read -r r2 lo2 hi2 <<<"$(kvratio "$s" statelite "$b" e2e_ops_per_sec)"
    echo "- statelite / $b: processing **${r}x** ($lo–$hi), end to end **${r2}x** ($lo2–$hi2)"
  done
  echo
}

out=$scratch/RESULTS.md
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'). The"
  echo "whole \`make bench\` took **@ELAPSED@ s**: ${build_secs} s of building (and checking the"
  echo "peers' packages), ${base_secs} s of building the base states the runs start from, and the"
  echo "runs. Every figure is the median of $RUNS runs, each a"
  echo "process of its own, with the minimum and maximum in brackets; within a round the"
  echo "engines took turns, and every ratio is of medians from this same run, with the"
  echo "range of the ratios of the single rounds."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPUs (nproc) | $ncpu |"
  echo "| CPU | $cpu |"
  echo "| Memory | $mem |"
  echo "| Kernel | $(uname -sr) |"
  echo "| File system of the scratch directory | ${fs_type:-unknown} |"
  echo "| Compiler | $cc_version |"
  echo "| statelite | $statelite_version, built from base/, store/, snapshot/ and sdk/ with \`-O2 -g -DNDEBUG\` |"
  echo "| SQLite | $sqlite_version (the system library) |"
  echo "| RocksDB | $rocksdb_version$rocksdb_pkg; its default block cache is $rocksdb_default_cache_mib MiB |"
  echo "| Load average (1 min) after each run | $load_range |"
  echo
  if [ -n "$load_max" ] && awk -v l="$load_max" -v n="$ncpu" 'BEGIN { exit !(l > n * 0.75 + 0.5) }'; then
    echo "**Other processes were busy during this run**: the load average reached"
    echo "$load_max on $ncpu CPUs, while one benchmark run keeps one CPU busy (statelite's"
    echo "checkpoint thread and RocksDB's background threads a second one at times)."
    echo "The absolute figures and their spread suffer from that; the ratios, taken"
    echo "within each round, less so."
    echo
  fi

  # ---- Targets ----
  echo "## The targets"
  echo
  echo "Each from this run; \"processing\" and \"end to end\" are the two rates defined"
  echo "[below](#what-the-figures-are)."
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  for s in value-A-uniform value-A-zipf; do
    for pair in "hash 0.5" "rocksdb 20" "rocksdb-${A_BUDGET_MIB}MiB 20" "sqlite 5"; do
      read -r b goal <<<"$pair"
      read -r r _ _ <<<"$(kvratio "$s" statelite "$b" ops_per_sec)"
      read -r r2 _ _ <<<"$(kvratio "$s" statelite "$b" e2e_ops_per_sec)"
      echo "| working set fits (${sec_dist[$s]}): statelite >= ${goal}x $b | processing ${r}x, end to end ${r2}x | processing $(verdict "$r" '>=' "$goal"), end to end $(verdict "$r2" '>=' "$goal") |"
    done
  done
  for s in value-B-uniform value-B-zipf; do
    for b in $rocks_b; do
      read -r r _ _ <<<"$(kvratio "$s" statelite "$b" ops_per_sec)"
      read -r r2 _ _ <<<"$(kvratio "$s" statelite "$b" e2e_ops_per_sec)"
      echo "| working set past the budget (${sec_dist[$s]}): statelite >= 1.5x $b | processing ${r}x, end to end ${r2}x | processing $(verdict "$r" '>=' 1.5), end to end $(verdict "$r2" '>=' 1.5) |"
    done
  done
  big=$(tr ' ' '\n' <<<"$CHK_KEYS" | sort -g | tail -n1)
  read -r p99m _ p99hi <<<"$(kvstat checkpoint "statelite-$big" sync_p99_ms)"
  echo "| checkpoint sync pause p99 <= 5 ms at $(fmt_int "$big") keys, 1% changed | $(awk -v x="$p99m" -v y="$p99hi" 'BEGIN { printf "%.1f ms (median of the runs; worst run %.1f ms)", x, y }') | $(verdict_worst "$p99m" '<=' 5 "$p99hi") |"
  read -r rm _ rhi <<<"$(kvstat checkpoint "statelite-$big" ratio_median)"
  echo "| snapshot bytes <= 0.35x the live database bytes | $(awk -v x="$rm" -v y="$rhi" 'BEGIN { printf "%.3fx (worst run %.3fx)", x, y }') | $(verdict_worst "$rm" '<=' 0.35 "$rhi") |"
  for s in value-A-uniform value-A-zipf value-B-uniform value-B-zipf; do
    lim=$A_BUDGET_MIB
    [ "${sec_size[$s]}" = B ] && lim=$B_BUDGET_MIB
    read -r m _ hi <<<"$(kvstat "$s" statelite peak_rss_kb)"
    echo "| peak RSS <= budget + 8 MiB = $((lim + 8)) MiB (ValueState, ${sec_size[$s]}, ${sec_dist[$s]}) | $(kib_mib "$m") MiB (largest run $(kib_mib "$hi") MiB) | $(verdict_worst "$(kib_mib "$m")" '<=' $((lim + 8)) "$(kib_mib "$hi")") |"
  done
  echo
  echo "**What bounds the ratio to the hash table.** The hash table maps an int64 to"
  echo "an int64 in a 16-byte slot: a get and a put are a multiply, a probe, a load and"
  echo "a store, about 108 instructions per record with its growth included. A record of"
  echo "statelite's ValueState costs about 670 in steady state, all cache hits"
  echo "(\`valgrind --tool=callgrind --toggle-collect=lite_value ./build/bench_value"
  echo "statelite --records N --keys 100000 --checkpoint-ms 0\` at N = 1M and 2M, the"
  echo "difference; \`--toggle-collect=hash_value ... hash\` for the table), for what a"
  echo "state store does and a bare table does not: three calls that check their handle,"
  echo "the state's kind and the key's and values' types; the key encoded into its"
  echo "canonical bytes and hashed with murmur3 into its Flink key group, and that group"
  echo "checked against the instance's range; the row kept typed and packed, decoded on a"
  echo "read and packed on a write; the entry marked for the next checkpoint. The cache"
  echo "miss on the slot is common to both. The end-to-end rate adds the final"
  echo "checkpoint, which copies, commits and compresses every key, work the table never"
  echo "does. At about 6x the instructions the 0.5x target is out of reach for this API;"
  echo "it is reported as missed, with the figure."
  echo
  if [ -s "$notes" ] || [ "${#sec_pilot[@]}" -gt 0 ]; then
    echo "**Sizes.** The sizes of the issue (2M records over 100k keys, 5M records"
    echo "over 2M keys) do not fit 10 minutes on this machine with $RUNS runs of every engine,"
    echo "so these sections ran shorter streams; the section's heading gives its size,"
    echo "and the commands to run the full size are [at the end](#the-full-sizes)."
    echo
    for s in "${state_sections[@]}"; do
      [ -n "${sec_pilot[$s]:-}" ] || continue
      echo "- $s: $(fmt_int "${sec_records[$s]}") records per run instead of $(fmt_int "${sec_nominal[$s]}"): ${sec_pilot[$s]}."
    done
    [ -s "$notes" ] && sed 's/^/- /' "$notes"
    echo
  fi

  # ---- Definitions ----
  echo "## What the figures are"
  echo
  echo "- **records/s processing**: the records over the time from the first record to"
  echo "  the last, with the synchronous parts of the checkpoints (the pauses) in it and"
  echo "  their asynchronous parts overlapping on another thread."
  echo "- **records/s end to end**: the records over the time from the first record until"
  echo "  the final checkpoint after the last record has completed, that is, until"
  echo "  everything processed is durable. The final checkpoint is a fixed cost (it"
  echo "  writes the whole state), so the shorter the stream, the more it weighs here."
  echo "- **checkpoints**: how many completed in a run, the final one included. A"
  echo "  checkpoint starts every $CHECKPOINT_MS ms of processing time, as Flink's"
  echo "  \`execution.checkpointing.interval\`, and the next one only after the previous one"
  echo "  has completed (one concurrent checkpoint, no minimum pause); \`--interval N\`"
  echo "  instead starts one every N records."
  echo "- **pause**: the synchronous part of a checkpoint on the processing thread; p50,"
  echo "  p99 (nearest rank: with fewer than 100 checkpoints in a run, the largest) and"
  echo "  max over the checkpoints of a run, then the median over the runs."
  echo "- **peak RSS**: \`ru_maxrss\` of the run's own process when the final checkpoint"
  echo "  has completed, before the read-back. Before the engine opens, the process"
  echo "  holds about $(kib_mib "$(kvstat value-A-uniform statelite base_rss_kb | cut -d' ' -f1)") MiB (the program, libc, SQLite, zstd, the key buffer);"
  echo "  the RocksDB runs use a build of the same program that links librocksdb, whose"
  echo "  resident pages alone come to about $(kib_mib "$(awk -v x="$(kvstat value-A-uniform rocksdb base_rss_kb | cut -d' ' -f1)" -v y="$(kvstat value-A-uniform statelite base_rss_kb | cut -d' ' -f1)" 'BEGIN { print x - y }')") MiB more."
  echo "- **state at the end**: the size of the state as the engine keeps it: the"
  echo "  database of statelite's final snapshot (\`raw_bytes\`), SQLite's pages, RocksDB's"
  echo "  SST files after the final flush, the hash table's arrays."
  echo "- The keys are generated in chunks of 65,536 records while the clock is stopped"
  echo "  (splitmix64, seed $SEED; Zipf keys by rejection-inversion sampling, the hot ranks"
  echo "  scattered over the key space), so the figures are the engine's, not the"
  echo "  generator's. At the end every run reads its whole state back through the"
  echo "  engine and compares it with what the stream implies (every counter, every"
  echo "  map entry, every list row in order); every run below passed."
  echo
  echo "## The engines"
  echo
  echo "- **statelite**: \`sl_store_set_key\` per record, then \`sl_value_get\` +"
  echo "  \`sl_value_update\` (value), \`sl_map_get\` + \`sl_map_put\` (map), \`sl_list_add\` and,"
  echo "  on a read, \`sl_list_get\` + \`sl_list_update\` (list). The cache budget is the"
  echo "  section's (${A_BUDGET_MIB} MiB at size A, ${A_ML_BUDGET_MIB} MiB for MapState and ListState there, whose"
  echo "  8 entries per key take that; ${B_BUDGET_MIB} MiB at size B); the SQLite page cache of the state file,"
  echo "  2 MiB, is part of it. A checkpoint: \`sl_snapshot_begin\` on the processing thread (the pause),"
  echo "  \`sl_snapshot_write\` and \`sl_chkdir_publish\` on a second thread while processing"
  echo "  goes on, \`sl_snapshot_end\` on the processing thread once a flag polled between"
  echo "  batches of 1,024 records says the second thread is done; 2 checkpoints kept,"
  echo "  zstd level 3. \`sl_snapshot_end\` is not counted as pause; the longest one in any"
  echo "  run took $(awk -F'|' '$2 ~ /^statelite/ { n = split($4, kv, " "); for (i = 1; i <= n; i++) if (kv[i] ~ /^end_max_ms=/) { v = substr(kv[i], 12) + 0; if (v > m) m = v } } END { printf "%.1f", m }' "$kv") ms."
  echo "- **statelite-nocache**: the same with a cache budget of 0 (every access is an"
  echo "  SQLite statement), to show what the cache gives."
  echo "- **hash**: an open-addressing hash table in memory (linear probing, grows at half"
  echo "  full), a get and then a put per record: int64 key -> counter (value), (key, map"
  echo "  key) -> counter (map), key -> a growable array of rows (list). It takes no"
  echo "  checkpoints, so its two rates are the same. The ceiling."
  echo "- **sqlite**: hand-written tables \`counts(k INTEGER PRIMARY KEY, count)\` (value),"
  echo "  \`counts(k, mk, count, PRIMARY KEY(k, mk)) WITHOUT ROWID\` (map) and"
  echo "  \`rows(k, seq, v, PRIMARY KEY(k, seq)) WITHOUT ROWID\` (list; seq is the record's"
  echo "  number); one prepared statement per access (SELECT, then INSERT OR REPLACE; for"
  echo "  lists an INSERT, and on a read a SELECT ... ORDER BY seq and a DELETE of the rows"
  echo "  before the last 8), one transaction per checkpoint interval; a checkpoint is"
  echo "  the COMMIT. WAL with synchronous=FULL, so that a completed checkpoint is durable"
  echo "  as statelite's and RocksDB's are; a page cache equal to statelite's budget."
  echo "- **rocksdb**: the C API, default options, the WAL off for every write, as Flink's"
  echo "  RocksDB state backend runs it. Value: key = the 8-byte big-endian integer, value"
  echo "  = 8 bytes; map: key = key + map key (16 bytes, as Flink puts the user key after"
  echo "  the key), get + put; list: a merge operator that appends 8-byte elements, so"
  echo "  that an add is a \`rocksdb_merge\` without a read, as Flink's RocksDB list state"
  echo "  does with RocksDB's string-append operator; a read is a \`rocksdb_get\` (the merge"
  echo "  applied), a trim a \`rocksdb_put\` of the last 8. A checkpoint is \`rocksdb_flush\`"
  echo "  (waiting) plus \`rocksdb_checkpoint_create\` (hard links) into a checkpoint"
  echo "  directory, 2 kept. RocksDB's background threads (flushes, compactions) run"
  echo "  beside the processing thread. Its default block cache is $rocksdb_default_cache_mib MiB."
  echo "- **rocksdb-${A_BUDGET_MIB}MiB** / **rocksdb-${A_ML_BUDGET_MIB}MiB**$( [ "$rocks_b" != rocksdb ] && echo " / **rocksdb-${B_BUDGET_MIB}MiB**"): the same with an LRU block cache equal to"
  echo "  statelite's budget (\`rocksdb_cache_create_lru\`).$( [ "$rocks_b" = rocksdb ] && echo " At size B that is ${B_BUDGET_MIB} MiB, which is RocksDB $rocksdb_version's default block cache, so there the \`rocksdb\` figures stand for both configurations.")"
  echo
  echo "Lists stay bounded: one record in 8 (chosen by a second splitmix64 stream) reads"
  echo "its key's whole list and, when it holds more than 8 rows, replaces it by the last"
  echo "8 (a count window or a pattern buffer does this). Maps: each record carries a map"
  echo "key, one of 8 per key, drawn from the same second stream."
  echo

  # ---- Workload 1 and 2 ----
  for st in value map list; do
    case $st in
      value) echo "## Workload 1: ValueState get + update per record" ;;
      map) echo "## Workload 2a: MapState get + put per record" ;;
      list) echo "## Workload 2b: ListState add per record, a read of the list every 8th" ;;
    esac
    echo
    for s in "${state_sections[@]}"; do
      [ "${sec_state[$s]}" = "$st" ] || continue
      echo "### $(title_of "$s")"
      echo
      keys=$A_KEYS
      [ "${sec_size[$s]}" = B ] && keys=$B_KEYS
      dist_m=$(kvstat "$s" statelite distinct | cut -d' ' -f1)
      printf '%s records per run over %s keys (%s distinct keys in the stream)' \
        "$(fmt_int "${sec_records[$s]}")" "$(fmt_int "$keys")" "$(fmt_int "$dist_m")"
      if [ "${sec_base[$s]:-0}" = 1 ]; then
        printf '; the state starts with all %s keys at 0, copied from a base state before the clock starts' "$(fmt_int "$keys")"
      fi
      if [ "${sec_records[$s]}" -lt "${sec_nominal[$s]}" ]; then
        printf ' (scaled down from %s records to fit the time limit)' "$(fmt_int "${sec_nominal[$s]}")"
      fi
      echo ". The section took ${sec_secs[$s]} s."
      echo
      state_table "$s"
      if [ "${sec_size[$s]}" = B ]; then
        # How large is the working set against the budget? At size A the
        # whole state is in the cache: bytes per row there times the rows here.
        awk -v cb="$(kvstat "${st}-A-uniform" statelite cache_bytes | cut -d' ' -f1)" \
            -v ra="$(kvstat "${st}-A-uniform" statelite rows | cut -d' ' -f1)" \
            -v rb="$(kvstat "$s" statelite rows | cut -d' ' -f1)" \
            -v db="$(kvstat "$s" statelite distinct | cut -d' ' -f1)" \
            -v sb="$(kvstat "$s" statelite state_bytes | cut -d' ' -f1)" \
            -v b="$B_BUDGET_MIB" '
        function commas(x,   s, o) {
          s = sprintf("%.0f", x); o = ""
          while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
          return s o }
        BEGIN {
          if (ra + 0 <= 0 || cb == "-") exit
          per = cb / ra; w = per * rb; r = w / (b * 1048576)
          printf "The working set: statelite'\''s cache held %.0f bytes per row at size A (where everything fits); this state has %s rows, so holding it all would take about %.0f MiB, **%.1fx the %d MiB budget** (the state file: %.1f MiB). The stream itself touched %s distinct keys", per, commas(rb), w / 1048576, r, b, sb / 1048576, commas(db)
          if (r < 10) printf ". That is less than the 10x of the full-size run (the stream was shortened), so this is not yet the figure for a working set 10x the budget"
          print "." }'
        echo
      fi
      echo "Commands (from bench/ after \`make build\`; one run each):"
      echo
      echo '```'
      if [ "${sec_base[$s]:-0}" = 1 ]; then
        echo "# the base states, once:"
        for label in statelite sqlite rocksdb; do
          echo "./$(engine_cmd "$label" B | awk '{ print $1, $2 }') --keys $B_KEYS --build-base base/$label"
        done
      fi
      printf '%s\n' "${sec_cmds[$s]}"
      echo '```'
      echo
    done
  done

  # ---- Workload 3 ----
  echo "## Workload 3: checkpoints of a store: pause, size, restore"
  echo
  echo "A value state of N keys (key \`k\` INTEGER; values \`n\` INTEGER and \`s\` TEXT of about"
  echo "12 bytes), filled once per engine (\`--build-base\`) and copied into place at the start"
  echo "of every run (\`--base\`; not timed with the checkpoints). Then $CHK_INTERVALS intervals: change"
  echo "1% of the keys (splitmix64, seed $SEED), then take a checkpoint; nothing else runs"
  echo "meanwhile, so the parts are timed alone. After the last one the newest checkpoint"
  echo "is restored and every key read back and checked (all runs passed)."
  echo
  echo "- **statelite**: \`sl_chkdir_target\`, \`sl_snapshot_begin\` (the synchronous part: it"
  echo "  freezes the changed entries), \`sl_snapshot_write\` (the asynchronous part: it commits"
  echo "  them and backs the commit up; here on the same"
  echo "  thread), \`sl_snapshot_end\`, \`sl_chkdir_publish\`; cache budget 64 MiB, zstd level"
  echo "  3, 2 kept. Restore: \`sl_chkdir_restore\` into a fresh directory, then open the"
  echo "  store and read every key (\`sl_state_scan\`)."
  echo "- **rocksdb**: default options, WAL off, the filled store flushed and compacted. The"
  echo "  synchronous part is \`rocksdb_flush\` + \`rocksdb_checkpoint_create\` (hard links);"
  echo "  the asynchronous part streams every file of the checkpoint directory through"
  echo "  libzstd at level 3 and counts the bytes (what an upload of the compressed"
  echo "  checkpoint would send); 2 kept. Restore: open the checkpoint directory as a"
  echo "  database, then iterate every key."
  echo
  echo "Per run: p50 and p99 of the pause over its $CHK_INTERVALS checkpoints (nearest rank; with"
  echo "$CHK_INTERVALS samples p99 is the largest), the median of the other per-checkpoint figures;"
  echo "the table gives the median over the $RUNS runs with their minimum and maximum."
  echo
  echo "| figure | statelite | rocksdb |"
  echo "|---|---:|---:|"
  for keys in $CHK_KEYS; do
    [ "$(wc -w <<<"$CHK_KEYS")" -gt 1 ] && echo "| **$(fmt_int "$keys") keys** | | |"
    row() { echo "| $1 | $(cell checkpoint "statelite-$keys" "$2" "$3") | $(cell checkpoint "rocksdb-$keys" "$2" "$3") |"; }
    row "sync pause p50, ms" sync_p50_ms ms2
    row "sync pause p99, ms" sync_p99_ms ms2
    row "async part, ms" async_median_ms ms
    row "snapshot bytes: statelite's .db.zst; zstd of RocksDB's checkpoint" bytes_median sz
    row "live bytes: the database in the snapshot; RocksDB's checkpoint files" raw_bytes_median sz
    row "snapshot / live" ratio_median s3
    row "bytes written during a checkpoint (/proc/self/io)" written_median sz
    row "bytes written per interval, all" written_per_interval sz
    row "new files per checkpoint (what an incremental checkpoint copies)" incremental_median sz
    row "peak extra disk of a checkpoint (the largest of the run)" peak_disk_max sz
    row "disk held by the 2 kept checkpoints" kept_disk_median sz
    row "restore, s (statelite: sl_chkdir_restore; RocksDB: open)" restore_seconds s3
    row "read every key back after the restore, s" read_seconds s3
    row "**restore time: both together, s**" restore_total_seconds s3
    row "working files on disk" file_bytes_median sz
    row "copying the filled store into place, s" populate_seconds s3
  done
  echo
  echo "Peak extra disk: for statelite the snapshot file's \`peak_disk_bytes\` (streamed"
  echo "into the compressor, no uncompressed copy: $(awk -F'|' '$1 == "checkpoint" && $2 ~ /^statelite/ { print $4 }' "$kv" | tr ' ' '\n' | sed -n 's/^streamed=//p' | awk -F/ '{ a += $1; b += $2 } END { print a "/" b }') snapshots); for RocksDB the"
  echo "files of the newest checkpoint directory that the live database no longer holds"
  echo "(hard links cost nothing until compaction replaces the files), measured right"
  echo "after the checkpoint and again before the next one. Bytes written count"
  echo "everything the process sent to storage, RocksDB's background compactions"
  echo "included. The section took ${chk_secs} s."
  echo
  echo "Ratios: statelite's sync pause p99 is $(read -r a _ _ <<<"$(kvratio checkpoint "statelite-$big" "rocksdb-$big" sync_p99_ms)"; echo "$a")x RocksDB's; its snapshot is $(read -r a _ _ <<<"$(kvratio checkpoint "statelite-$big" "rocksdb-$big" bytes_median)"; echo "$a")x the size of RocksDB's compressed checkpoint."
  echo
  echo '```'
  for keys in $CHK_KEYS; do
    for eng in statelite rocksdb; do
      echo "./$CHK_BIN --engine $eng --keys $keys --build-base base/chk-$eng-$keys"
      echo "./$CHK_BIN --engine $eng --keys $keys --intervals $CHK_INTERVALS --seed $SEED --base base/chk-$eng-$keys"
    done
  done
  echo '```'
  echo

  # ---- Workload 4 ----
  echo "## Workload 4: peak RSS per engine, ValueState"
  echo
  echo "From the runs of workload 1 (each run its own process): \`ru_maxrss\` when the"
  echo "final checkpoint has completed, median (min–max) in MiB. Target for statelite:"
  echo "at most the budget + 8 MiB."
  echo
  echo "| engine | $(for s in value-A-uniform value-A-zipf value-B-uniform value-B-zipf; do printf '%s, %s (%s records) | ' "${sec_size[$s]}" "${sec_dist[$s]}" "$(fmt_int "${sec_records[$s]}")"; done | sed 's/ | $//') |"
  echo "|---|---:|---:|---:|---:|"
  for label in statelite statelite-nocache hash sqlite rocksdb rocksdb-${A_BUDGET_MIB}MiB rocksdb-${B_BUDGET_MIB}MiB; do
    line="| $label"
    any=0
    for s in value-A-uniform value-A-zipf value-B-uniform value-B-zipf; do
      if [[ " ${sec_engines[$s]} " == *" $label "* ]]; then
        line="$line | $(cell "$s" "$label" peak_rss_kb kb)"
        any=1
      else
        line="$line | –"
      fi
    done
    [ "$any" = 1 ] && echo "$line |"
  done
  echo
  echo "Size A: budget ${A_BUDGET_MIB} MiB (target $((A_BUDGET_MIB + 8)) MiB); size B: budget ${B_BUDGET_MIB} MiB (target $((B_BUDGET_MIB + 8)) MiB). The"
  echo "commands are those of workload 1."
  echo

  # ---- Workload 5 ----
  echo "## Workload 5: the SDK pipeline end to end"
  echo
  echo "\`sl_generator_source\` ($(fmt_int "$PIPE_RECORDS") records over $(fmt_int "$PIPE_KEYS") keys, parallelism 1)"
  echo "-> \`SL_KEY_BY \"key\"\` -> a keyed counter (value state, \`sl_value_get\` +"
  echo "\`sl_value_update\` per record, emits key and count) -> \`SL_REBALANCE\` -> a sink"
  echo "that counts records (no output file, parallelism 1). Exactly-once, a"
  echo "checkpoint every $CHECKPOINT_MS ms, a memory budget of 32 MiB per instance, which"
  echo "holds the counter's keys (the job's default, 8 MiB, holds about half of them: with"
  echo "it the counter spends its time evicting and reading back, about 250k records/s at"
  echo "parallelism 1), the other settings the defaults (channels of 1024 records, zstd"
  echo "level 3); fresh state and checkpoint"
  echo "directories per run. records/s is the records over the wall time of"
  echo "\`sl_job_run\` (start, restore check, run, final checkpoint), so it is an"
  echo "end-to-end rate. Pauses and completed checkpoints come from \`sl_job_get_stats\`."
  echo "Every run was checked: the sink saw each record once and the counts add up."
  echo "The section took ${pipe_secs} s."
  echo
  echo "| counter parallelism | records/s | wall s | pause p50 ms | pause p99 ms | pause max ms | checkpoints completed |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for par in $PIPE_PARS; do
    pcell() { read -r m lo hi <<<"$(kvstat pipeline "$par" "$1")"
      awk -v m="$m" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%.2f (%.2f–%.2f)", m / 1000, lo / 1000, hi / 1000 }'; }
    echo "| $par | $(cell pipeline "$par" records_per_sec int) | $(cell pipeline "$par" seconds ms2) | $(pcell pause_p50_us) | $(pcell pause_p99_us) | $(pcell pause_max_us) | $(cell pipeline "$par" checkpoints n) |"
  done
  echo
  echo '```'
  for par in $PIPE_PARS; do
    echo "./$PIPE_BIN --records $PIPE_RECORDS --keys $PIPE_KEYS --par $par --interval-ms $CHECKPOINT_MS --budget $PIPE_BUDGET"
  done
  echo '```'
  echo

  # ---- Full sizes ----
  echo "## The full sizes"
  echo
  echo "\`make bench FULL=1\` runs every section at the issue's size ($(fmt_int "$A_RECORDS") records over"
  echo "$(fmt_int "$A_KEYS") keys, $(fmt_int "$B_RECORDS") over $(fmt_int "$B_KEYS") keys from an empty state; the pipeline with"
  echo "20,000,000 records), $RUNS runs each, without a time limit; on this machine that takes"
  echo "hours, mostly RocksDB's. One run of a section at full size, from bench/:"
  echo
  echo '```'
  for s in value-A-uniform value-B-uniform; do
    for label in ${sec_engines[$s]}; do
      keys=$A_KEYS
      [ "${sec_size[$s]}" = B ] && keys=$B_KEYS
      echo "./$(engine_cmd "$label" "${sec_size[$s]}" "${sec_state[$s]}") --records ${sec_nominal[$s]} --state value --keys $keys --seed $SEED --checkpoint-ms $CHECKPOINT_MS"
    done
  done
  echo '```'
  echo
  echo "(add \`--zipf 1.1\` for Zipf keys, \`--state map\` or \`--state list\` for workload 2)."
} > "$out"
# The duration of the whole make bench, writing this file included (the
# make has only its exit left to do).
elapsed=$(fint "$(fsub "$(now)" "$make_t0")")
sed "s/@ELAPSED@/$elapsed/" "$out" > RESULTS.md
echo "== wrote bench/RESULTS.md; make bench took ${elapsed} s"
