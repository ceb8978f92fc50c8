#!/usr/bin/env bash
# run.sh — runs the benchmark configurations and writes bench/RESULTS.md.
#
# Every configuration (a section: one workload, several engines) runs RUNS
# times, the engines taking turns within each round (A B C, A B C, ...) so
# that drift of the machine hits all of them alike. Per engine it reports the
# median, minimum and maximum of ops/s and the median peak RSS; the ratios
# compare medians from this same run, with the range of the per-round ratios.
#
# Environment: RUNS (default 5), RECORDS (2000000), KEYS (100000), SEED (42),
# TIME_LIMIT (seconds the whole run may take, default 540), TMPDIR, BIN
# (default build/bench_value). A ValueState section whose first round shows
# that it would not fit in the time left to it is restarted with fewer
# records, and RESULTS.md says so. The two ValueState sections may use 35% and
# 52% of TIME_LIMIT; the rest is left to the checkpoint sections that follow.
#
# Then: "Checkpoints of a store" (build/bench_checkpoint, CHK_KEYS, default
# "100000 1000000", CHK_INTERVALS 20) and "The SDK pipeline end to end"
# (build/bench_pipeline, PIPE_RECORDS 400000, PIPE_PARS "1 2"), RUNS rounds
# each, the configurations taking turns within each round.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-5}
RECORDS=${RECORDS:-2000000}
KEYS=${KEYS:-100000}
SEED=${SEED:-42}
INTERVAL=100000
TIME_LIMIT=${TIME_LIMIT:-540}
BIN=${BIN:-build/bench_value}
CHK_BIN=${CHK_BIN:-build/bench_checkpoint}
PIPE_BIN=${PIPE_BIN:-build/bench_pipeline}
CHK_KEYS=${CHK_KEYS:-100000 1000000}
CHK_INTERVALS=${CHK_INTERVALS:-20}
PIPE_RECORDS=${PIPE_RECORDS:-400000}
PIPE_PARS=${PIPE_PARS:-1 2}
CC=${CC:-cc}

for b in "$BIN" "$CHK_BIN" "$PIPE_BIN"; do
  [ -x "$b" ] || { echo "run.sh: $b is missing; run make -C bench build first." >&2; exit 1; }
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/statelite-bench-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
data=$scratch/results.txt    # section|label|round|ops|rss_kb|seconds|commit_seconds
kv=$scratch/kv.txt           # section|label|round|the key=value line of a program
notes=$scratch/notes.txt     # sentences for RESULTS.md
loads=$scratch/loads.txt     # 1-minute load average after each run
: > "$data"
: > "$loads"
: > "$notes"
: > "$kv"

start=$(date +%s)
now() { date +%s; }

# A section: NAME TITLE ARGS DEADLINE_SECONDS ENGINES...
# Each engine is LABEL=BENCH_ARGS (BENCH_ARGS: the engine and its options).
# ARGS are the workload options shared by every engine of the section.
declare -A sec_title sec_args sec_records sec_cmds
sections=()

# run_one SECTION LABEL ROUND RECORDS ENGINE_ARGS WORKLOAD_ARGS -> appends to $data
run_one() {
  local section=$1 label=$2 round=$3 records=$4 eargs=$5 wargs=$6 out
  # shellcheck disable=SC2086
  if ! out=$("$BIN" $eargs --records "$records" --keys "$KEYS" --seed "$SEED" \
              --interval "$INTERVAL" $wargs --dir "$scratch"); then
    echo "run.sh: $label ($section) failed: $BIN $eargs --records $records $wargs" >&2
    exit 1
  fi
  local ops rss secs csecs
  ops=$(sed -n 's/.* ops_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
  rss=$(sed -n 's/.* peak_rss_kb=\([0-9]*\).*/\1/p' <<<"$out")
  secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$out")
  csecs=$(sed -n 's/.* commit_seconds=\([0-9.]*\).*/\1/p' <<<"$out")
  if [ -z "$ops" ] || ! grep -q 'verified=ok' <<<"$out"; then
    echo "run.sh: $label ($section) printed no verified result: $out" >&2
    exit 1
  fi
  echo "$section|$label|$round|$ops|$rss|$secs|$csecs" >> "$data"
  cut -d' ' -f1 /proc/loadavg >> "$loads" 2>/dev/null || true
  last_ops=$ops
  last_secs=$secs
}

run_section() {
  local name=$1 title=$2 wargs=$3 deadline=$4; shift 4
  local engines=("$@")
  local records=$RECORDS total=$((RUNS * $#))
  local attempt round i t0 t1 k label eargs
  sections+=("$name")
  sec_title[$name]=$title
  sec_args[$name]=$wargs
  for attempt in 1 2; do
    k=0
    for round in $(seq 1 "$RUNS"); do
      t0=$(now)
      for i in "${!engines[@]}"; do
        label=${engines[$i]%%=*}
        eargs=${engines[$i]#*=}
        k=$((k + 1))
        printf '[%s %2d/%d] %-18s round %d/%d ... ' "$name" "$k" "$total" "$label" "$round" "$RUNS"
        run_one "$name" "$label" "$round" "$records" "$eargs" "$wargs"
        printf '%10s ops/s  (%s s)\n' "$last_ops" "$last_secs"
      done
      t1=$(now)
      if [ "$round" -eq 1 ] && [ "$attempt" -eq 1 ]; then
        # Will the section fit before its deadline?
        local need=$(( (t1 - t0 + 1) * RUNS )) left=$(( deadline - (t1 - start) ))
        if [ "$need" -gt "$left" ]; then
          local scaled=$(( records * left / need / INTERVAL * INTERVAL ))
          [ "$scaled" -ge "$INTERVAL" ] || scaled=$INTERVAL
          echo "run.sh: section $name would take about ${need}s, ${left}s are left: restarting with $scaled records instead of $records." >&2
          echo "The section \"$title\" was scaled down from $records to $scaled records per run, because its first round showed that $RUNS rounds would take about ${need} s and the whole benchmark must finish in ${TIME_LIMIT} s." >> "$notes"
          records=$scaled
          grep -v "^$name|" "$data" > "$data.tmp" || true
          mv "$data.tmp" "$data"
          continue 2
        fi
      fi
    done
    break
  done
  sec_records[$name]=$records
  local cmd_bin=$BIN
  [[ $BIN == /* ]] || cmd_bin=./$BIN
  sec_cmds[$name]=$(for i in "${!engines[@]}"; do
    echo "$cmd_bin ${engines[$i]#*=} --records $records --keys $KEYS --seed $SEED${wargs:+ $wargs}"
  done)
}

echo "== statelite benchmarks: $RUNS rounds per section, $RECORDS records over $KEYS keys"

run_section uniform "Uniform keys: the working set fits the 64 MiB cache (statelite-4MiB: it does not)" "" \
  $(( TIME_LIMIT * 35 / 100 )) \
  "statelite=statelite" "hash=hash" "statelite-nocache=statelite-nocache" \
  "sqlite=sqlite" "rocksdb=rocksdb" "statelite-4MiB=statelite --budget 4194304"

run_section zipf "Zipf keys (s = 1.1), working set fits" "--zipf 1.1" \
  $(( TIME_LIMIT * 52 / 100 )) \
  "statelite=statelite" "hash=hash" "rocksdb=rocksdb"

value_elapsed=$(( $(now) - start ))

# run_kv SECTION LABEL ROUND COMMAND... -> appends the program's line to $kv
run_kv() {
  local section=$1 label=$2 round=$3 out; shift 3
  if ! out=$("$@" --dir "$scratch"); then
    echo "run.sh: $label ($section) failed: $*" >&2
    exit 1
  fi
  if ! grep -q 'verified=ok' <<<"$out"; then
    echo "run.sh: $label ($section) printed no verified result: $out" >&2
    exit 1
  fi
  echo "$section|$label|$round|$out" >> "$kv"
  cut -d' ' -f1 /proc/loadavg >> "$loads" 2>/dev/null || true
}

# kvstat SECTION LABEL FIELD -> "median min max" of FIELD=value over the rounds
kvstat() {
  awk -F'|' -v s="$1" -v l="$2" '$1 == s && $2 == l { print $4 }' "$kv" |
    tr ' ' '\n' | sed -n "s/^$3=//p" | sort -g | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.6g %.6g %.6g\n", m, v[1], v[NR] }'
}

chk_start=$(now)
echo "== checkpoints of a store: keys $CHK_KEYS, $CHK_INTERVALS intervals, 1% changed"
for round in $(seq 1 "$RUNS"); do
  for keys in $CHK_KEYS; do
    printf '[checkpoint] %8s keys round %d/%d ... ' "$keys" "$round" "$RUNS"
    run_kv checkpoint "$keys" "$round" "$CHK_BIN" --keys "$keys" --intervals "$CHK_INTERVALS" \
      --seed "$SEED"
    tail -n1 "$kv" | sed -n 's/.*\(sync_p99_ms=[0-9.]*\).*\(ratio_median=[0-9.]*\).*/\1 \2/p'
  done
done
chk_elapsed=$(( $(now) - chk_start ))

pipe_start=$(now)
echo "== SDK pipeline: $PIPE_RECORDS records, counter parallelism $PIPE_PARS"
for round in $(seq 1 "$RUNS"); do
  for par in $PIPE_PARS; do
    printf '[pipeline] parallelism %s round %d/%d ... ' "$par" "$round" "$RUNS"
    run_kv pipeline "$par" "$round" "$PIPE_BIN" --records "$PIPE_RECORDS" --keys "$KEYS" \
      --par "$par" --interval-ms 1000
    tail -n1 "$kv" | sed -n 's/.*\(records_per_sec=[0-9]*\).*/\1/p'
  done
done
pipe_elapsed=$(( $(now) - pipe_start ))

elapsed=$(( $(now) - start ))
echo "== all runs done in ${elapsed}s; writing RESULTS.md"

# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

# stat SECTION LABEL FIELD -> "median min max" (FIELD: 4 ops, 5 rss, 6 s, 7 commit s)
stat() {
  awk -F'|' -v s="$1" -v l="$2" -v f="$3" '$1 == s && $2 == l { print $f }' "$data" |
    sort -g | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.4f %.4f %.4f\n", m, v[1], v[NR] }'
}

# ratio SECTION A B -> "median_ratio min_round_ratio max_round_ratio"
ratio() {
  local ma mb
  ma=$(stat "$1" "$2" 4 | cut -d' ' -f1)
  mb=$(stat "$1" "$3" 4 | cut -d' ' -f1)
  awk -F'|' -v s="$1" -v a="$2" -v b="$3" -v ma="$ma" -v mb="$mb" '
    $1 == s && $2 == a { A[$3] = $4 }
    $1 == s && $2 == b { B[$3] = $4 }
    END {
      lo = ""; hi = ""
      for (r in A) if ((r in B) && B[r] > 0) {
        x = A[r] / B[r]
        if (lo == "" || x < lo) lo = x
        if (hi == "" || x > hi) hi = x
      }
      printf "%.3g %.3g %.3g\n", ma / mb, lo, hi
    }' "$data"
}

# fmt_int 1234567.8 -> 1,234,568
fmt_int() {
  awk -v x="$1" 'BEGIN {
    s = sprintf("%.0f", x); out = ""
    while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    print s out }'
}

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
rocksdb_hdr=$(printf '#include <rocksdb/c.h>\n' | $CC -M -x c - 2>/dev/null |
  tr -s ' \\' '\n' | grep '/rocksdb/c\.h$' | head -n1 || true)
rocksdb_version=unknown
if [ -n "$rocksdb_hdr" ] && [ -f "$(dirname "$rocksdb_hdr")/version.h" ]; then
  rocksdb_version=$(awk '/#define ROCKSDB_(MAJOR|MINOR|PATCH) /{ v[$2] = $3 }
    END { print v["ROCKSDB_MAJOR"] "." v["ROCKSDB_MINOR"] "." v["ROCKSDB_PATCH"] }' \
    "$(dirname "$rocksdb_hdr")/version.h")
fi
if command -v dpkg-query >/dev/null 2>&1 &&
   pkg=$(dpkg-query -W -f='${Version}' librocksdb-dev 2>/dev/null) && [ -n "$pkg" ]; then
  rocksdb_version="$rocksdb_version (Debian package librocksdb-dev $pkg)"
fi

# ---------------------------------------------------------------------------
# RESULTS.md
# ---------------------------------------------------------------------------

out=$scratch/RESULTS.md
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'); the"
  echo "whole run took ${elapsed} s. Each figure is the median of $RUNS runs, with the"
  echo "minimum and maximum in brackets; the engines took turns within every round."
  echo "The ValueState sections ran first (${value_elapsed} s) and may use 35% and 52% of the"
  echo "time limit (${TIME_LIMIT} s) before they scale their record counts down (they had"
  echo "70% and 100% before the checkpoint and pipeline sections were added); the"
  echo "checkpoint and pipeline sections run at fixed sizes."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPUs (nproc) | $ncpu |"
  echo "| CPU | $cpu |"
  echo "| Memory | $mem |"
  echo "| Kernel | $(uname -sr) |"
  echo "| Compiler | $cc_version |"
  echo "| statelite | $statelite_version, built from base/ and store/ with \`-O2 -g -DNDEBUG\` |"
  echo "| SQLite | $sqlite_version (the system library) |"
  echo "| RocksDB | $rocksdb_version |"
  echo "| Load average (1 min) after each run | $load_range |"
  echo
  if [ -n "$load_max" ] && awk -v l="$load_max" -v n="$ncpu" 'BEGIN { exit !(l > n * 0.75 + 0.5) }'; then
    echo "**Other processes were busy during this run**: the load average reached"
    echo "$load_max on $ncpu CPUs, while one benchmark run keeps about one CPU busy"
    echo "(RocksDB a little more, with its background flushes). The absolute figures"
    echo "and their spread suffer from that; the ratios, taken within each round, less so."
    echo
  fi
  echo "## The workload: ValueState get + update per record"
  echo
  echo "For each record: set the key (an integer), read its counter, write the"
  echo "counter plus one. Every $INTERVAL records (the checkpoint interval) and at the"
  echo "end the state is committed; the time of those commits is part of the figure."
  echo "ops/s is records per second; every record is one get and one update. The"
  echo "keys of each interval are generated before the clock starts (splitmix64,"
  echo "seed $SEED). After the run every counter is read back through the engine"
  echo "and checked against the key stream; every run below passed that check."
  echo
  echo "- **statelite**: \`sl_store_set_key\`, \`sl_value_get\`, \`sl_value_update\`,"
  echo "  \`sl_store_commit\` per interval; cache budget 64 MiB unless the label says"
  echo "  otherwise; the other settings are the defaults (2 MiB SQLite page cache)."
  echo "- **statelite-nocache**: the same with a cache budget of 0."
  echo "- **hash**: an open-addressing hash table (int64 -> int64, linear probing,"
  echo "  grows at half full) in memory; no commit. The ceiling."
  echo "- **sqlite**: a hand-written table \`counts(k INTEGER PRIMARY KEY, count)\`, one"
  echo "  prepared SELECT and one prepared INSERT OR REPLACE per record, one"
  echo "  transaction per interval, WAL, synchronous=OFF, default page cache."
  echo "- **rocksdb**: the C API with default options and the WAL disabled; key = 8-byte"
  echo "  big-endian integer, value = 8-byte integer; a checkpoint flushes the"
  echo "  memtable (\`rocksdb_flush\`, waiting), since without a WAL that is what makes"
  echo "  its state durable, as in Flink's RocksDB backend."
  echo
  if [ -s "$notes" ]; then
    echo "**Scaled down:**"
    echo
    sed 's/^/- /' "$notes"
    echo
  fi
  for s in "${sections[@]}"; do
    echo "## ${sec_title[$s]}"
    echo
    echo "${sec_records[$s]} records over $KEYS keys${sec_args[$s]:+ (\`${sec_args[$s]}\`)}."
    echo
    echo "| engine | ops/s median (min–max) | peak RSS median | seconds median (of which commits) |"
    echo "|---|---:|---:|---:|"
    while IFS= read -r label; do
      read -r om omin omax <<<"$(stat "$s" "$label" 4)"
      read -r rm _ _ <<<"$(stat "$s" "$label" 5)"
      read -r tm _ _ <<<"$(stat "$s" "$label" 6)"
      read -r cm _ _ <<<"$(stat "$s" "$label" 7)"
      printf '| %s | %s (%s–%s) | %s MiB | %.2f (%.2f) |\n' "$label" "$(fmt_int "$om")" \
        "$(fmt_int "$omin")" "$(fmt_int "$omax")" \
        "$(awk -v k="$rm" 'BEGIN { printf "%.1f", k / 1024 }')" "$tm" "$cm"
    done < <(awk -F'|' -v s="$s" '$1 == s && !seen[$2]++ { print $2 }' "$data")
    echo
    echo "Ratios of medians (range of the per-round ratios in brackets):"
    echo
    labels=$(awk -F'|' -v s="$s" '$1 == s { print $2 }' "$data" | sort -u)
    for pair in "statelite hash" "statelite rocksdb" "statelite sqlite" \
                "statelite statelite-nocache" "statelite-4MiB rocksdb" \
                "statelite-4MiB sqlite"; do
      read -r a b <<<"$pair"
      if ! grep -qx "$a" <<<"$labels" || ! grep -qx "$b" <<<"$labels"; then continue; fi
      read -r r lo hi <<<"$(ratio "$s" "$a" "$b")"
      echo "- $a / $b: **${r}x** ($lo–$hi)"
    done
    echo
    echo "To reproduce a figure, from bench/ after \`make build\` (one run each):"
    echo
    echo '```'
    printf '%s\n' "${sec_cmds[$s]}"
    echo '```'
    echo
  done
  # ---- Checkpoints of a store ----
  chk_cmd=$CHK_BIN
  [[ $chk_cmd == /* ]] || chk_cmd=./$chk_cmd
  pipe_cmd=$PIPE_BIN
  [[ $pipe_cmd == /* ]] || pipe_cmd=./$pipe_cmd
  echo "## Checkpoints of a store: pause, size, restore"
  echo
  echo "A store with one value state of N keys (key \`k\` INTEGER; values \`n\` INTEGER"
  echo "and \`s\` TEXT of about 12 bytes), filled and committed first (not timed with"
  echo "the checkpoints). Then $CHK_INTERVALS intervals: change 1% of the keys (drawn with"
  echo "splitmix64, seed $SEED), then take checkpoint i: \`sl_chkdir_target\`,"
  echo "\`sl_snapshot_begin\` (the synchronous part, which commits the changes: the"
  echo "pause of the operator), \`sl_snapshot_write\` (the asynchronous part; here run"
  echo "on the same thread with nothing beside it), \`sl_snapshot_get_info\`,"
  echo "\`sl_snapshot_end\`, \`sl_chkdir_publish\`. Default settings: cache budget"
  echo "64 MiB, zstd level 3, 2 checkpoints kept. After the last one the store is"
  echo "closed and the newest checkpoint restored (\`sl_chkdir_restore\`) into a fresh"
  echo "state directory; every restored row was read back and checked (all runs passed)."
  echo
  echo "Per run: the pause p50 and p99 over its $CHK_INTERVALS checkpoints (nearest rank, so"
  echo "with $CHK_INTERVALS samples p99 is the largest pause), the median of the others."
  echo "The table gives the median over the $RUNS runs of those per-run figures, with"
  echo "their minimum and maximum. \"Live database\" is \`raw_bytes\`: the size of the"
  echo "database the snapshot holds (the state file on disk, with its WAL, is larger:"
  echo "see the last column)."
  echo
  echo "| keys | sync pause p50 ms | sync pause p99 ms | async (write) ms | snapshot bytes | live database bytes | snapshot / live | peak extra disk | restore s | state file + WAL on disk |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for keys in $CHK_KEYS; do
    cell() { # FIELD FORMAT SCALE
      read -r m lo hi <<<"$(kvstat checkpoint "$keys" "$1")"
      awk -v m="$m" -v lo="$lo" -v hi="$hi" -v f="$2" -v d="${3:-1}" \
        'BEGIN { printf f " (" f "–" f ")", m / d, lo / d, hi / d }'
    }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(fmt_int "$keys")" \
      "$(cell sync_p50_ms %.2f)" "$(cell sync_p99_ms %.2f)" "$(cell async_median_ms %.0f)" \
      "$(cell bytes_median '%.2f MiB' 1048576)" "$(cell raw_bytes_median '%.2f MiB' 1048576)" \
      "$(cell ratio_median %.3f)" "$(cell peak_disk_median '%.2f MiB' 1048576)" \
      "$(cell restore_seconds %.3f)" "$(cell file_bytes_median '%.1f MiB' 1048576)"
  done
  echo
  streamed=$(awk -F'|' '$1 == "checkpoint" { print $4 }' "$kv" | tr ' ' '\n' |
    sed -n 's/^streamed=//p' | awk -F/ '{ a += $1; b += $2 } END { print a "/" b }')
  echo "Snapshots streamed into the compressor without an uncompressed copy: $streamed."
  echo "Peak extra disk is \`peak_disk_bytes\`: the snapshot file itself when streamed."
  echo "Publishing (\`sl_chkdir_publish\`) took a median of"
  for keys in $CHK_KEYS; do
    read -r m _ _ <<<"$(kvstat checkpoint "$keys" publish_median_ms)"
    printf -- '%.1f ms at %s keys; ' "$m" "$(fmt_int "$keys")"
  done
  echo "filling the store took"
  for keys in $CHK_KEYS; do
    read -r m _ _ <<<"$(kvstat checkpoint "$keys" populate_seconds)"
    printf -- '%.2f s at %s keys; ' "$m" "$(fmt_int "$keys")"
  done
  echo "the section took ${chk_elapsed} s."
  echo
  big=$(tr ' ' '\n' <<<"$CHK_KEYS" | grep -x 1000000 || tr ' ' '\n' <<<"$CHK_KEYS" | sort -g | tail -n1)
  read -r p99m _ p99hi <<<"$(kvstat checkpoint "$big" sync_p99_ms)"
  echo "Design targets:"
  echo
  if awk -v x="$p99m" 'BEGIN { exit !(x <= 5) }'; then verdict="**met**"; else verdict="**missed**"; fi
  printf -- '- sync pause p99 <= 5 ms at %s keys with 1%% changed: %s (median of the per-run p99 %.2f ms, worst run %.2f ms).\n' \
    "$(fmt_int "$big")" "$verdict" "$p99m" "$p99hi"
  for keys in $CHK_KEYS; do
    read -r rm _ rhi <<<"$(kvstat checkpoint "$keys" ratio_median)"
    if awk -v x="$rm" 'BEGIN { exit !(x <= 0.35) }'; then verdict="**met**"; else verdict="**missed**"; fi
    printf -- '- snapshot bytes <= 0.35x the live database bytes at %s keys: %s (%.3fx median, worst run %.3fx).\n' \
      "$(fmt_int "$keys")" "$verdict" "$rm" "$rhi"
  done
  echo
  echo "To reproduce, from bench/ after \`make build\` (one run each):"
  echo
  echo '```'
  for keys in $CHK_KEYS; do
    echo "$chk_cmd --keys $keys --intervals $CHK_INTERVALS --seed $SEED"
  done
  echo '```'
  echo
  # ---- The SDK pipeline ----
  echo "## The SDK pipeline end to end"
  echo
  echo "\`sl_generator_source\` ($(fmt_int "$PIPE_RECORDS") records over $(fmt_int "$KEYS") keys, parallelism 1)"
  echo "-> \`SL_KEY_BY \"key\"\` -> a keyed counter (value state, \`sl_value_get\` +"
  echo "\`sl_value_update\` per record, emits key and count) -> \`SL_REBALANCE\` -> a sink"
  echo "that counts records (no output file, parallelism 1). Exactly-once, a"
  echo "checkpoint every 1000 ms, the other settings the defaults (8 MiB cache per"
  echo "instance, channels of 1024 records, zstd level 3); fresh state and checkpoint"
  echo "directories per run, removed afterwards. records/s is the records over the"
  echo "wall time of \`sl_job_run\` (start, restore check, run, final checkpoint). The"
  echo "pauses (synchronous part of the checkpoints) and the count of completed"
  echo "checkpoints come from \`sl_job_get_stats\`. Every run was checked: the sink saw"
  echo "each record once and the counts it saw add up to what per-key counters give."
  echo "The section took ${pipe_elapsed} s."
  echo
  echo "| counter parallelism | records/s | wall s | pause p50 ms | pause p99 ms | pause max ms | checkpoints completed |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for par in $PIPE_PARS; do
    read -r rm rlo rhi <<<"$(kvstat pipeline "$par" records_per_sec)"
    pcell() { # FIELD
      read -r m lo hi <<<"$(kvstat pipeline "$par" "$1")"
      awk -v m="$m" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%.2f (%.2f–%.2f)", m / 1000, lo / 1000, hi / 1000 }'
    }
    read -r sm slo shi <<<"$(kvstat pipeline "$par" seconds)"
    read -r cm clo chi <<<"$(kvstat pipeline "$par" checkpoints)"
    printf '| %s | %s (%s–%s) | %.2f (%.2f–%.2f) | %s | %s | %s | %s (%s–%s) |\n' "$par" \
      "$(fmt_int "$rm")" "$(fmt_int "$rlo")" "$(fmt_int "$rhi")" "$sm" "$slo" "$shi" \
      "$(pcell pause_p50_us)" "$(pcell pause_p99_us)" "$(pcell pause_max_us)" "$cm" "$clo" "$chi"
  done
  echo
  echo "To reproduce, from bench/ after \`make build\` (one run each):"
  echo
  echo '```'
  for par in $PIPE_PARS; do
    echo "$pipe_cmd --records $PIPE_RECORDS --keys $KEYS --par $par --interval-ms 1000"
  done
  echo '```'
  echo
  echo "## Targets of the design, for reference"
  echo
  echo "While the working set fits the budget: statelite at least 0.5x the hash"
  echo "table, 20x RocksDB and 5x plain SQLite, and a large gain of the cache over"
  echo "no cache. Past the budget it should stay ahead of RocksDB. The figures above"
  echo "are what this run measured."
} > "$out"
mv "$out" RESULTS.md
echo "== wrote bench/RESULTS.md"
