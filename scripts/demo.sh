#!/usr/bin/env bash
# The minictr demo: installs what is missing, builds minictr, makes a busybox
# root filesystem, and shows what a container is, one kernel feature at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages "${PKGS_RUN[@]}"

say "building minictr"
go build -o bin/minictr ./cmd/minictr

demo=$(mktemp -d /tmp/minictr-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
export MINICTR_ROOT=$demo/root MINICTR_RUN_ROOT=$demo/run
say "making a busybox root filesystem in $demo/rootfs"
go run ./scripts/mkrootfs "$demo/rootfs"
ls "$demo/rootfs"

# run prints the command line, then runs it; a failing status is shown, not fatal.
run() {
	printf '\n$ %s\n' "$*"
	"$@" || printf '(exit status %d)\n' "$?"
}

say "1. A container, step by step (--explain shows each kernel call and its shell equivalent)"
run bin/minictr --explain run --rootfs "$demo/rootfs" --hostname demo --memory 64m -- \
	sh -c 'echo "hello from $(hostname), I am PID $$"'

say "2. Namespaces: its own PIDs, host name, network and root"
run bin/minictr run --rootfs "$demo/rootfs" --hostname box -- sh -c 'hostname; ps; ip link; ls /'

say "3. cgroups: 200 MB of data in a 16 MiB container is OOM-killed"
run bin/minictr run --rootfs "$demo/rootfs" --memory 16m -- sh -c 'head -c 200000000 /dev/zero | sort >/dev/null'

say "4. cgroups: a fork bomb stopped by --pids-limit 20"
run bin/minictr run --rootfs "$demo/rootfs" --pids-limit 20 -- \
	sh -c 'for i in $(seq 100); do sleep 5 & echo -n "$i "; done'

say "5. Privileges: docker's capabilities for root, none for a user"
run bin/minictr run --rootfs "$demo/rootfs" -- grep Cap /proc/self/status
run bin/minictr run --rootfs "$demo/rootfs" -u student -- sh -c 'id; grep CapEff /proc/self/status; touch /etc/x'

say "6. The exit status is the container's: 3"
run bin/minictr run --rootfs "$demo/rootfs" -- sh -c 'exit 3'

say "done: everything the demo created is gone (cgroups, mounts, state)"
