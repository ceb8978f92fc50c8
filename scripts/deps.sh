#!/usr/bin/env bash
# deps.sh — makes sure what statelite needs to build is installed.
#
# Checks for the SQLite and zstd headers and libraries, the sqlite3 shell and
# pkg-config, plus any Debian package named on the command line (for example
# `scripts/deps.sh valgrind`). Missing pieces are installed with apt-get when
# this is a Debian or Ubuntu machine and we are root (or may sudo without a
# password); otherwise the script stops and names the packages to install.
#
#   scripts/deps.sh [--sanitize LIST] [PACKAGE...]
#
# --sanitize LIST also checks that $CC can link a program built with
# -fsanitize=LIST (clang needs its runtime package for that).
# The compiler is $CC (default cc). Exit status 0 when everything is present.
set -euo pipefail

CC=${CC:-cc}
sanitize=
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --sanitize) sanitize=${2:?--sanitize needs a list}; shift 2 ;;
    --sanitize=*) sanitize=${1#--sanitize=}; shift ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "deps.sh: unknown option $1" >&2; exit 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sl-deps-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# try_link SOURCE FLAGS...: does $CC compile and link SOURCE with FLAGS?
try_link() {
  local src=$1; shift
  printf '%s\n' "$src" > "$tmp/t.c"
  # $CC is split on purpose: it may be "ccache gcc" or "gcc -m32".
  # shellcheck disable=SC2086
  $CC "$tmp/t.c" -o "$tmp/t" "$@" >/dev/null 2>&1
}

# installed PACKAGE: is the Debian package installed (or, without dpkg, is
# there a command of that name)?
installed() {
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

missing=()
add() {
  local p
  for p in "${missing[@]+"${missing[@]}"}"; do [ "$p" = "$1" ] && return 0; done
  missing+=("$1")
}

check() {
  missing=()
  sanitizer_unsupported=
  if ! command -v "${CC%% *}" >/dev/null 2>&1; then
    echo "deps.sh: the C compiler '$CC' was not found; install one (gcc or clang) or set CC." >&2
    exit 1
  fi
  try_link '#include <sqlite3.h>
int main(void) { return sqlite3_libversion_number() > 0 ? 0 : 1; }' -lsqlite3 ||
    add libsqlite3-dev
  try_link '#include <zstd.h>
int main(void) { return ZSTD_versionNumber() > 0 ? 0 : 1; }' -lzstd ||
    add libzstd-dev
  command -v sqlite3 >/dev/null 2>&1 || add sqlite3
  command -v pkg-config >/dev/null 2>&1 || add pkg-config
  local p
  for p in "${extra[@]+"${extra[@]}"}"; do
    installed "$p" || add "$p"
  done
  if [ -n "$sanitize" ] &&
     ! try_link 'int main(void) { return 0; }' "-fsanitize=$sanitize"; then
    if $CC --version 2>/dev/null | grep -qi clang; then
      add libclang-rt-dev
    else
      sanitizer_unsupported=1
    fi
  fi
}

check
if [ ${#missing[@]} -eq 0 ] && [ -z "$sanitizer_unsupported" ]; then
  exit 0
fi
if [ -n "$sanitizer_unsupported" ]; then
  echo "deps.sh: '$CC' cannot link a program built with -fsanitize=$sanitize; install the compiler's sanitizer runtime (libasan, libubsan) or use another CC." >&2
  exit 1
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo="sudo -n"
  fi
fi
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; }; then
  echo "statelite needs these packages, which are missing: ${missing[*]}." >&2
  echo "Install them (on Debian or Ubuntu: apt-get install ${missing[*]}) and run make again." >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! $sudo apt-get update -qq >&2 ||
   ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
  echo "deps.sh: apt-get could not install ${missing[*]}; install them by hand and run make again." >&2
  exit 1
fi

check
if [ ${#missing[@]} -ne 0 ] || [ -n "$sanitizer_unsupported" ]; then
  echo "deps.sh: still missing after apt-get install: ${missing[*]}${sanitizer_unsupported:+ (sanitizer runtime)}." >&2
  exit 1
fi
echo "deps.sh: all build dependencies are present." >&2
