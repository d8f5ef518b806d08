#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzX in *_fuzz_test.go)
# for a bounded time each: FUZZTIME (default 4s) with FUZZPARALLEL workers
# (default 2). The seed corpora (testdata/fuzz/FuzzX/ and f.Add) already run
# as ordinary tests in `go test ./...`; this searches beyond them. A crasher
# is written to the package's testdata/fuzz/FuzzX/: fix the bug and commit
# it there as a regression seed.
#
# The fuzzer keeps what it learns in $(go env GOCACHE)/fuzz, which must lie
# outside the repository so that fuzzing never grows the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
find_go

fuzztime=${FUZZTIME:-4s}
parallel=${FUZZPARALLEL:-2}
# Minimising a new input is not bounded by -fuzztime: with the default (60s)
# a slow target such as FuzzUnpack spends the whole run minimising and ends
# in "context deadline exceeded". Failing inputs are still written whole.
minimize=${FUZZMINIMIZETIME:-1s}
repo=$(pwd -P)

cache=$(go env GOCACHE)
case "$(realpath -m "$cache")/" in
"$repo"/*)
	tmpcache=$(mktemp -d /tmp/minictr-fuzzcache.XXXXXX)
	trap 'rm -rf "$tmpcache"' EXIT
	say "GOCACHE ($cache) is inside the repository: fuzzing with GOCACHE=$tmpcache instead"
	export GOCACHE=$tmpcache
	;;
esac
say "fuzz cache: $(go env GOCACHE)/fuzz"

# "pkg target" pairs, found in the sources so that a new target runs too.
targets=$(grep -rHo --include='*_fuzz_test.go' '^func Fuzz[A-Za-z0-9_]*' cmd pkg internal |
	sed -E 's|^(.*)/[^/]*:func (Fuzz.*)$|./\1 \2|' | sort)
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }

start=$SECONDS
while read -r pkg target; do
	say "fuzz $target in $pkg for $fuzztime ($parallel workers)"
	if ! go test -run='^$' -fuzz="^$target\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" -parallel="$parallel" "$pkg"; then
		echo "FAIL: $target in $pkg; new inputs:" >&2
		git status --porcelain -- "$pkg/testdata/fuzz/$target" >&2
		exit 1
	fi
done <<<"$targets"
say "fuzzed $(wc -l <<<"$targets") targets in $((SECONDS - start))s"
