#!/usr/bin/env bash
# deps.sh — makes sure the benchmarks' peers can be compiled against: SQLite
# (libsqlite3-dev), zstd (libzstd-dev, which the library links) and RocksDB's
# C API (librocksdb-dev). Each is checked by compiling and linking a small
# program with $CC. On Debian or Ubuntu, as root, missing packages are
# installed with apt-get; elsewhere the script stops and names them.
#
#   CC=cc bench/deps.sh          exit status 0 when everything is present
set -euo pipefail

CC=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-deps-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# try_link SOURCE FLAGS...: does $CC compile and link SOURCE with FLAGS?
try_link() {
  local src=$1; shift
  printf '%s\n' "$src" > "$tmp/t.c"
  # $CC is split on purpose: it may be "ccache gcc".
  # shellcheck disable=SC2086
  $CC "$tmp/t.c" -o "$tmp/t" "$@" >/dev/null 2>&1
}

missing=()
check() {
  missing=()
  if ! command -v "${CC%% *}" >/dev/null 2>&1; then
    echo "The benchmarks need a C compiler: '$CC' was not found; install gcc or clang, or set CC." >&2
    exit 1
  fi
  try_link '#include <sqlite3.h>
int main(void) { return sqlite3_libversion_number() > 0 ? 0 : 1; }' -lsqlite3 ||
    missing+=(libsqlite3-dev)
  try_link '#include <zstd.h>
int main(void) { return ZSTD_versionNumber() > 0 ? 0 : 1; }' -lzstd ||
    missing+=(libzstd-dev)
  try_link '#include <stddef.h>
#include <rocksdb/c.h>
int main(void) { rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_destroy(o); return 0; }' -lrocksdb ||
    missing+=(librocksdb-dev)
}

check
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1 ||
   [ ! -f /etc/debian_version ]; then
  echo "make bench needs ${missing[*]}, which is missing (a test program could not be compiled against it); install it (Debian or Ubuntu: apt-get install ${missing[*]}) and run make bench again." >&2
  exit 1
fi

wanted=("${missing[@]}")
echo "bench: installing ${wanted[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
  # The package lists may be missing or stale.
  if ! apt-get update -qq >&2 ||
     ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    echo "apt-get could not install ${missing[*]}; install the package(s) by hand and run make bench again." >&2
    exit 1
  fi
fi

check
if [ ${#missing[@]} -ne 0 ]; then
  echo "Still cannot compile against ${missing[*]} after apt-get install; check the installation and run make bench again." >&2
  exit 1
fi
echo "bench: installed ${wanted[*]}." >&2
