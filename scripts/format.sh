#!/usr/bin/env bash
# Formats every tracked C and C++ file (.h, .cc, .c) of base/ gpu/ runtime/ launcher/
# tests/ benchmarks/ in place with clang-format and the repository's .clang-format.
#
#   scripts/format.sh           format the files in place
#   scripts/format.sh --check   change nothing; name each file that is not formatted
#
# Exit status: 0 all formatted, 1 some file is not (--check) or clang-format failed,
# 2 usage, 77 clang-format is not installed (CTest's format.check skips on it).
# CI pins Debian 12's clang-format 14 (scripts/install-deps.sh); another version may
# lay some lines out differently, so it is used with a warning. CLANG_FORMAT=path
# picks a binary.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly kSkip=77
readonly kDirs=(base gpu runtime launcher tests benchmarks)

check=false
case "${1-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
if [[ $# -gt 1 ]]; then
  echo "usage: scripts/format.sh [--check]" >&2
  exit 2
fi

clang_format="${CLANG_FORMAT-}"
if [[ -n "$clang_format" ]] && ! command -v "$clang_format" >/dev/null 2>&1; then
  echo "format.sh: CLANG_FORMAT=$clang_format is not a program" >&2
  exit 1
fi
if [[ -z "$clang_format" ]]; then
  for candidate in clang-format-14 clang-format; do
    if command -v "$candidate" >/dev/null 2>&1; then
      clang_format="$candidate"
      break
    fi
  done
fi
if [[ -z "$clang_format" ]]; then
  echo "format.sh: clang-format is not installed (scripts/install-deps.sh installs it);" \
    "skipping" >&2
  exit "$kSkip"
fi
version="$("$clang_format" --version)"
if [[ ! "$version" =~ version\ 14\. ]]; then
  echo "format.sh: warning: CI formats with clang-format 14; this is: $version" >&2
fi

# The tracked files; outside a git checkout (a source tarball), every file there is.
files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    [[ -f "$f" ]] && files+=("$f")
  done < <(git ls-files -z -- "${kDirs[@]}" | grep -zE '\.(h|cc|c)$' || true)
else
  while IFS= read -r -d '' f; do
    files+=("$f")
  done < <(find "${kDirs[@]}" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.c' \) \
    -print0 | sort -z)
fi

if [[ ${#files[@]} -eq 0 ]]; then
  echo "format.sh: no files to format" >&2
  exit 1
fi

# One clang-format process for all files: one per file takes minutes on a busy machine.
if ! $check; then
  printf '%s\0' "${files[@]}" | xargs -0 "$clang_format" -i --style=file
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi

# --dry-run --Werror reports "FILE:LINE:COL: error: code should be clang-formatted
# [-Wclang-format-violations]"; --ferror-limit=1 keeps that to one report per file.
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
status=0
printf '%s\0' "${files[@]}" |
  xargs -0 "$clang_format" --style=file --dry-run --Werror --ferror-limit=1 >"$report" 2>&1 ||
  status=$?
readonly kViolation='s/^\(.*\):[0-9]*:[0-9]*: error: .*-Wclang-format-violations.*$/\1/p'
mapfile -t unformatted < <(sed -n "$kViolation" "$report" | sort -u)
if [[ ${#unformatted[@]} -eq 0 && $status -ne 0 ]]; then
  cat "$report" >&2
  echo "format.sh: clang-format failed (exit status $status)" >&2
  exit 1
fi
if [[ ${#unformatted[@]} -gt 0 ]]; then
  printf 'not formatted: %s\n' "${unformatted[@]}"
  echo "${#unformatted[@]} of ${#files[@]} files are not formatted;" \
    "run scripts/format.sh to format them"
  exit 1
fi
echo "format.sh: all ${#files[@]} files are formatted"
