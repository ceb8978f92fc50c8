#!/bin/sh
# generate.sh — writes the statelite amalgamation: statelite.c, the whole
# library as one translation unit, and statelite.h, the public header.
#
#   sh amalgamation/generate.sh [OUTDIR]      (default: build/amalgamation)
#
# statelite.c starts with `#define SL_PRIVATE static` (so every internal
# function is file-local), the feature-test macros, the SQLite and zstd
# version checks, then the project's own headers, each once and in
# dependency order, and then every .c file of base/, store/, snapshot/ and
# sdk/ in that order. `#include "..."` lines of project headers are dropped
# (the one of statelite.h stays at the top); <system> includes stay. #line
# directives make compiler messages name the original files. SQLite and zstd
# are not pasted in: the user compiles and links their own.
#
# Needs only POSIX sh, sed and awk. Exit status 0 on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-$root/build/amalgamation}
modules="base store snapshot sdk"

# The oldest SQLite and zstd this code compiles and runs with:
#   SQLite 3.33.0: the table name sqlite_schema (3.33.0),
#     SQLITE_DBCONFIG_TRUSTED_SCHEMA (3.31.0), SQLITE_DBCONFIG_DEFENSIVE
#     (3.26.0), sqlite3_prepare_v3 (3.20.0);
#   zstd 1.4.0: ZSTD_compressStream2 and the parameter API (stable in 1.4.0).
sqlite_min=3033000
sqlite_min_text=3.33.0
zstd_min=10400
zstd_min_text=1.4.0

die() {
  echo "generate.sh: $*" >&2
  exit 1
}

[ -f "$root/include/statelite.h" ] || die "cannot find include/statelite.h under $root"
version=$(sed -n 's/^#define SL_VERSION  *"\([0-9.]*\)".*/\1/p' "$root/include/statelite.h")
[ -n "$version" ] || die "cannot read SL_VERSION from include/statelite.h"

mkdir -p "$out"
tmp_c="$out/statelite.c.tmp.$$"
tmp_h="$out/statelite.h.tmp.$$"
trap 'rm -f "$tmp_c" "$tmp_h"' EXIT
trap 'exit 1' HUP INT TERM

# The project headers an input file includes ("dir/name.h"), one per line.
project_includes() {
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"
}

# Prints a file with its project includes replaced by a comment line (so
# that the line numbers stay right).
strip_includes() {
  awk '
    /^[ \t]*#[ \t]*include[ \t]*"/ {
      name = $0
      sub(/^[^"]*"/, "", name)
      sub(/".*$/, "", name)
      printf "/* #include \"%s\": in the amalgamation above */\n", name
      next
    }
    { print }
  ' "$1"
}

# File-local names that two .c files both define collide in one translation
# unit. The check reads the top level of each file (column 0): static
# functions and variables, #define macros (the same macro with the same body
# is harmless), typedefs and struct/union/enum tags. It prints one line per
# collision: NAME KIND FIRST_FILE SECOND_FILE.
# shellcheck disable=SC2016 # an awk program, not shell
collisions_awk='
function record(name, kind, body,   k) {
  if (name == "") return
  k = (kind == "tag" ? "tag " : "") name   # tags have a namespace of their own
  if ((FILENAME SUBSEP k) in seen_here) return
  seen_here[FILENAME SUBSEP k] = 1
  if (k in first_file) {
    if (kind == "macro" && first_kind[k] == "macro" && first_body[k] == body) return
    printf "%s %s %s %s\n", name, kind, first_file[k], FILENAME
  } else {
    first_file[k] = FILENAME
    first_kind[k] = kind
    first_body[k] = body
  }
}
function lastident(s,   m) {
  # the last identifier of s
  if (match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
    m = substr(s, RSTART, RLENGTH)
    sub(/[ \t]+$/, "", m)
    return m
  }
  return ""
}
/^#[ \t]*define[ \t]/ {
  line = $0
  sub(/^#[ \t]*define[ \t]+/, "", line)
  name = line
  sub(/[^A-Za-z0-9_].*$/, "", name)
  body = substr(line, length(name) + 1)
  gsub(/[ \t]+/, " ", body)
  record(name, "macro", body)
  next
}
/^static[ \t]/ {
  line = $0
  # the declarator ends at the first ( [ = ; of the line
  if (match(line, /[(\[=;]/)) line = substr(line, 1, RSTART - 1)
  record(lastident(line), "static", "")
  next
}
/^(typedef[ \t]+)?(struct|union|enum)[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*\{/ {
  line = $0
  sub(/^(typedef[ \t]+)?(struct|union|enum)[ \t]+/, "", line)
  sub(/[^A-Za-z0-9_].*$/, "", line)
  record(line, "tag", "")
  next
}
/^}[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*;/ {
  line = $0
  sub(/^}[ \t]*/, "", line)
  sub(/[^A-Za-z0-9_].*$/, "", line)
  record(line, "typedef", "")
  next
}
/^typedef[ \t][^{]*;/ {
  line = $0
  sub(/[ \t]*;.*$/, "", line)
  if (line ~ /\)$/) {            # a function pointer type: typedef int (*name)(...)
    if (match($0, /\([ \t]*\*[ \t]*[A-Za-z_][A-Za-z0-9_]*/)) {
      line = substr($0, RSTART, RLENGTH)
      sub(/^\([ \t]*\*[ \t]*/, "", line)
      record(line, "typedef", "")
    }
  } else {
    record(lastident(line), "typedef", "")
  }
  next
}
'

emitted=" statelite.h "

# emit_header PATH: the headers PATH includes first, then PATH itself, once.
# ($1 is the only state that must survive the recursive calls.)
emit_header() {
  case $emitted in *" $1 "*) return 0 ;; esac
  [ -f "$root/$1" ] || die "$2 includes \"$1\", which is not a file of the project"
  emitted="$emitted$1 "
  for inc in $(project_includes "$root/$1"); do
    emit_header "$inc" "$1"
  done
  printf '#line 1 "%s"\n' "$1"
  strip_includes "$root/$1"
  printf '\n'
}

# every .c file of the modules, in order
sources=
for m in $modules; do
  for c in "$root/$m"/*.c; do
    [ -f "$c" ] && sources="$sources ${c#"$root"/}"
  done
done
[ -n "$sources" ] || die "no .c files under $modules"

# shellcheck disable=SC2086 # $sources is a list of relative paths without blanks
clashes=$(cd "$root" && awk "$collisions_awk" $sources)
if [ -n "$clashes" ]; then
  echo "generate.sh: these file-local names are defined in two files, which the one" >&2
  echo "translation unit of the amalgamation cannot hold; rename one of each:" >&2
  echo "$clashes" | while read -r name kind first second; do
    echo "  $name ($kind): $first and $second" >&2
  done
  exit 1
fi

{
  cat <<HEAD
/*
** statelite.c — statelite $version, the whole library in one file.
**
** Generated by amalgamation/generate.sh from base/, store/, snapshot/ and
** sdk/; do not edit it: change those files and generate it again.
**
** Compile it beside statelite.h and link SQLite ($sqlite_min_text or newer) and
** zstd ($zstd_min_text or newer), the system's or your own sqlite3.c:
**
**   cc -std=c11 -O2 -c statelite.c
**   cc -std=c11 app.c statelite.o -lsqlite3 -lzstd -lpthread -lm
**
** Every internal function is static; only the sl_ calls of statelite.h are
** external. Predefine SL_API to give them an attribute, for example
** '-DSL_API=__attribute__((visibility("default")))' in a shared library
** built with -fvisibility=hidden.
*/
#ifndef SL_PRIVATE
#define SL_PRIVATE static
#endif
#define SL_AMALGAMATION 1

/* POSIX.1-2008 and the common extensions (fseeko, ...) of the C library. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include "statelite.h"

#include <sqlite3.h>
#if !defined(SQLITE_VERSION_NUMBER) || SQLITE_VERSION_NUMBER < $sqlite_min
#error "statelite needs SQLite $sqlite_min_text or newer (sqlite3.h is older): it uses the table name sqlite_schema and SQLITE_DBCONFIG_TRUSTED_SCHEMA"
#endif

#include <zstd.h>
#if !defined(ZSTD_VERSION_NUMBER) || ZSTD_VERSION_NUMBER < $zstd_min
#error "statelite needs zstd $zstd_min_text or newer (zstd.h is older): it uses ZSTD_compressStream2 and the parameter API"
#endif

HEAD

  # the headers of every module, in dependency order
  for m in $modules; do
    for h in "$root/$m"/*.h; do
      [ -f "$h" ] || continue
      emit_header "${h#"$root"/}" "generate.sh"
    done
  done

  # the sources, module by module
  for rel in $sources; do
    for inc in $(project_includes "$root/$rel"); do
      case $emitted in
        *" $inc "*) ;;
        *) die "$rel includes \"$inc\", which is not a header of base/, store/, snapshot/ or sdk/" ;;
      esac
    done
    printf '#line 1 "%s"\n' "$rel"
    strip_includes "$root/$rel"
    printf '\n'
  done
} > "$tmp_c"

cp "$root/include/statelite.h" "$tmp_h"
mv -f "$tmp_c" "$out/statelite.c"
mv -f "$tmp_h" "$out/statelite.h"
trap - EXIT
echo "amalgamation: $out/statelite.c ($(wc -l < "$out/statelite.c" | tr -d ' ') lines) and $out/statelite.h"
