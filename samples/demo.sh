#!/bin/sh
# demo.sh — the statelite demo that `make run` starts.
#
#   sh samples/demo.sh [SENSOR_WINDOWS] [WORKDIR]
#       SENSOR_WINDOWS  the built sample (default build/samples/sensor_windows)
#       WORKDIR         where the runs keep their files (default build/demo;
#                       emptied first)
#
# Runs the sensor_windows sample (one-minute windows of temperature readings
# per device, in event time) three times:
#   A   slowed down, with a checkpoint every 100 ms, killed with SIGKILL
#       halfway through;
#   A'  the same command again: it restores the newest checkpoint and
#       finishes;
#   B   the same job on the same readings, never interrupted;
# then prints the results of A and B side by side, checks that the window
# results are identical, and shows the sqlite3 commands (with their output)
# that look into a state file and into a snapshot of a checkpoint.
# Exit status 0 when A and B agree.

# shellcheck disable=SC2086 # $args and $pace are lists of options
set -u

bin=${1:-build/samples/sensor_windows}
work=${2:-build/demo}
# options, split into words where they are used (hence no quotes there)
args="--devices 4 --minutes 30 --parallelism 2 --interval-ms 100"
pace="--pace-ms 12"

if [ ! -x "$bin" ]; then
  echo "demo.sh: $bin is not built; run make first" >&2
  exit 1
fi
rm -rf "$work" && mkdir -p "$work" || exit 1

nap() { sleep 0.1 2>/dev/null || sleep 1; }

# relay LOG: prints the progress lines of LOG not shown yet ($shown counts them)
relay() {
  total=$(grep -c -e '^progress' -e '^restored' "$1")
  if [ "$total" -gt "$shown" ]; then
    grep -e '^progress' -e '^restored' "$1" | sed -n "$((shown + 1)),${total}p" | sed 's/^/      /'
    shown=$total
  fi
}

# The newest checkpoint that has a MANIFEST (that is, that is complete).
newest_checkpoint() {
  for d in "$1"/chk-*; do
    [ -f "$d/MANIFEST" ] && echo "${d##*/chk-}"
  done | sort -n | tail -n 1
}

# The summary table a run prints at its end.
table() { sed -n '/^device /,/^[0-9]* one-minute windows/p' "$1" | sed '$d'; }

echo "statelite demo: one-minute windows (min/avg/max) of temperature readings,"
echo "per device and in event time, with late readings counted. 4 devices send a"
echo "reading a second for 30 minutes of event time: 7200 readings."
echo

echo "[1/4] Run A, slowed down so you can watch, a checkpoint every 100 ms:"
echo "      $bin --dir $work/A $args $pace --progress"
: > "$work/A-1.log"
"$bin" --dir "$work/A" $args $pace --progress > "$work/A-1.log" 2>&1 &
pid=$!
shown=0
killed=0
while kill -0 "$pid" 2>/dev/null; do
  relay "$work/A-1.log"
  if [ "$(grep -c '^progress' "$work/A-1.log")" -ge 5 ]; then
    kill -9 "$pid" 2>/dev/null && killed=1
    break
  fi
  nap
done
wait "$pid" 2>/dev/null
status=$?
if [ "$killed" = 1 ] && [ "$status" -gt 128 ]; then
  chk=$(newest_checkpoint "$work/A/checkpoints")
  echo "      kill -9 $pid: the process is gone, in the middle of its work."
  echo "      On disk: the state files in $work/A/state and the newest complete"
  echo "      checkpoint, $work/A/checkpoints/chk-$chk."
else
  echo "      (run A ended before it could be killed, status $status)"
fi
echo

echo "[2/4] Run A again, the same command:"
shown=0
: > "$work/A-2.log"
"$bin" --dir "$work/A" $args $pace --progress > "$work/A-2.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  relay "$work/A-2.log"
  nap
done
wait "$pid"
status=$?
relay "$work/A-2.log"
if [ "$status" -ne 0 ]; then
  echo "demo.sh: run A failed after the restart (status $status):" >&2
  cat "$work/A-2.log" >&2
  exit 1
fi
echo "      finished."
echo

echo "[3/4] Run B: the same job on the same readings, at full speed, never interrupted:"
echo "      $bin --dir $work/B $args"
if ! "$bin" --dir "$work/B" $args > "$work/B.log" 2>&1; then
  echo "demo.sh: run B failed:" >&2
  cat "$work/B.log" >&2
  exit 1
fi
echo "      finished."
echo

echo "[4/4] Results. Totals per device, read from the state files at the end:"
echo
table "$work/A-2.log" > "$work/A.table"
table "$work/B.log" > "$work/B.table"
# side by side; B without its device column (the first 11 characters)
awk -v a="$work/A.table" -v b="$work/B.table" 'BEGIN {
  w = 28
  while ((getline l < a) > 0) { la[++n] = l; if (length(l) > w) w = length(l) }
  while ((getline l < b) > 0) lb[++m] = substr(l, 12)
  printf "      %-" w "s | %s\n", "run A (killed and restarted)", "run B (uninterrupted)"
  for (i = 1; i <= n || i <= m; i++) printf "      %-" w "s | %s\n", la[i], lb[i]
}'
echo
LC_ALL=C sort "$work/A/windows.tsv" > "$work/A.windows"
LC_ALL=C sort "$work/B/windows.tsv" > "$work/B.windows"
na=$(wc -l < "$work/A.windows" | tr -d ' ')
nb=$(wc -l < "$work/B.windows" | tr -d ' ')
same=0
if cmp -s "$work/A.windows" "$work/B.windows" && cmp -s "$work/A.table" "$work/B.table"; then
  same=1
  echo "      Identical: the same totals, and the same $na window results (min, avg,"
  echo "      max per device and minute) in $work/A/windows.tsv and"
  echo "      $work/B/windows.tsv, each window exactly once."
else
  echo "      DIFFERENT: run A has $na window results, run B $nb:"
  diff "$work/A.windows" "$work/B.windows" | head -n 10
fi
echo

chk=$(newest_checkpoint "$work/A/checkpoints")
state_sql="SELECT device, readings, late, min, max FROM totals"
snap_sql="SELECT id, kind, sync_ms, async_ms, bytes FROM sl_checkpoints ORDER BY id DESC LIMIT 3"
snap="$work/A/checkpoints/chk-$chk/windows/0.db.zst"
echo "Look at the state with the sqlite3 shell. Instance 0 of the window operator"
echo "(the devices of its key groups; instance 1 is in 1.db):"
echo
echo "  sqlite3 -readonly $work/A/state/windows/0.db '$state_sql'"
if command -v sqlite3 >/dev/null 2>&1; then
  sqlite3 -readonly "$work/A/state/windows/0.db" "$state_sql" | sed 's/^/    /'
fi
echo
echo "A snapshot is a zstd-compressed SQLite file; the checkpoint history is in it:"
echo
echo "  zstd -d -c $snap > $work/snapshot.db && sqlite3 $work/snapshot.db '$snap_sql'"
if command -v zstd >/dev/null 2>&1 && command -v sqlite3 >/dev/null 2>&1; then
  zstd -q -d -c "$snap" > "$work/snapshot.db" && sqlite3 "$work/snapshot.db" "$snap_sql" | sed 's/^/    /'
else
  echo "    (the zstd or sqlite3 program is not installed here)"
fi
echo
echo "More: $bin --help, samples/ (one program per file), and README.md."
[ "$same" = 1 ]
