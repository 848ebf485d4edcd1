#!/bin/sh
# Installs pvbuild on a Xen host: the binary, its man pages (pvbuild(1), one page per
# subcommand, pvbuild.cfg(5)) and its bash, zsh and fish completions. The manuals and
# completions are written by the binary being installed (`pvbuild gen-manuals`, from its own
# clap definitions and config key tables), so they always describe that binary.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--binary FILE]
#
# --prefix   where it goes (default /usr/local): DIR/sbin/pvbuild (root's tool, as xl is
#            /usr/sbin/xl), DIR/share/man/man{1,5}, DIR/share/bash-completion/completions,
#            DIR/share/zsh/vendor-completions, DIR/share/fish/vendor_completions.d.
# --destdir  staged install (packaging, tests): everything under DIR + prefix.
# --binary   install this binary instead of building one with
#            `cargo build --release -p pvbuild` (which honours CARGO_TARGET_DIR).
set -eu
prefix=/usr/local
destdir=
binary=
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --destdir=*) destdir=${1#--destdir=}; shift ;;
    --binary) binary=${2:?--binary needs a file}; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $prefix in /*) ;; *) echo "error: --prefix must be absolute, not $prefix" >&2; exit 2 ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$binary" ]; then
    (cd "$repo" && cargo build --release -p pvbuild)
    binary=${CARGO_TARGET_DIR:-$repo/target}/release/pvbuild
fi
[ -x "$binary" ] || { echo "error: no pvbuild binary at $binary" >&2; exit 1; }
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$binary" gen-manuals "$gen"
root=$destdir$prefix
install -D -m 0755 "$binary" "$root/sbin/pvbuild"
for f in "$gen"/man1/*.1; do install -D -m 0644 "$f" "$root/share/man/man1/$(basename "$f")"; done
for f in "$gen"/man5/*.5; do install -D -m 0644 "$f" "$root/share/man/man5/$(basename "$f")"; done
install -D -m 0644 "$gen/completions/bash/pvbuild.bash" "$root/share/bash-completion/completions/pvbuild"
install -D -m 0644 "$gen/completions/zsh/_pvbuild" "$root/share/zsh/vendor-completions/_pvbuild"
install -D -m 0644 "$gen/completions/fish/pvbuild.fish" "$root/share/fish/vendor_completions.d/pvbuild.fish"
echo "installed pvbuild $("$binary" --version | sed 's/^pvbuild //') under $root:"
echo "  $prefix/sbin/pvbuild, $(ls "$gen"/man1 | wc -l) pages in man1, pvbuild.cfg(5), completions for bash, zsh and fish"
