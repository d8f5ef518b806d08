#!/usr/bin/env bash
# Runs every minictr test: installs what is missing, checks formatting and
# vet, runs all tests as root, then the unprivileged parts as a normal user,
# then the root tests again in a pure cgroup v2 VM when scripts/vm.sh exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages "${PKGS_TEST[@]}"

say "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
go vet ./...

say "go test ./... as root (cgroup $( [ -e /sys/fs/cgroup/cgroup.controllers ] && echo v2 || echo v1))"
go test -count=1 ./...
scripts/fuzz.sh # each fuzz target for a few seconds (the seeds ran just above)

say "tests as an unprivileged user (root-only parts skip)"
bins=$(mktemp -d /tmp/minictr-tests.XXXXXX)
trap 'rm -rf "$bins"' EXIT
chmod 755 "$bins"
pkgs=$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...)
# One go command builds them all in parallel, each as DIR/<last element>.test.
go test -c -o "$bins/" $pkgs
for pkg in $pkgs; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	bin=$bins/${pkg##*/}.test
	# As nobody, from the package's folder, with a private temporary folder.
	tmp=$(mktemp -d "$bins/tmp.XXXXXX"); chown 65534:65534 "$tmp"
	(cd "$dir" && setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$tmp" TMPDIR="$tmp" "$bin" -test.count=1 >"$bin.log" 2>&1) ||
		{ cat "$bin.log"; echo "FAIL (as non-root): $pkg" >&2; exit 1; }
	echo "ok (as non-root) $pkg"
done

if [ -x scripts/vm.sh ]; then
	say "root tests in a pure cgroup v2 VM"
	scripts/vm.sh test
fi
