#!/usr/bin/env bash
# The minictr demo: installs what is missing, builds minictr, makes a busybox
# image, pushes it to a local registry and pulls it back as a user would from
# Docker Hub, then shows what a container is, one kernel feature at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages "${PKGS_RUN[@]}"

say "building minictr"
go build -o bin/minictr ./cmd/minictr

demo=$(mktemp -d /tmp/minictr-demo.XXXXXX)
trap 'stop_registry; rm -rf "$demo"' EXIT
export MINICTR_ROOT=$demo/root MINICTR_RUN_ROOT=$demo/run
say "making a busybox root filesystem in $demo/rootfs"
go run ./scripts/mkrootfs "$demo/rootfs"
ls "$demo/rootfs"

# run prints the command line, then runs it; a failing status is shown, not fatal.
run() {
	printf '\n$ %s\n' "$*"
	"$@" || printf '(exit status %d)\n' "$?"
}

say "1. An image: the root filesystem as a tar, imported with a default command"
printf '\n$ tar -C %s -c . | bin/minictr import --change '\''CMD ["sh"]'\'' - busybox\n' "$demo/rootfs"
tar -C "$demo/rootfs" -c . | bin/minictr import --change 'CMD ["sh"]' - busybox

say "2. A registry: push the image to Debian's docker-registry on 127.0.0.1, forget it, pull it back"
start_registry "$demo/registry"
image=$REGISTRY/library/busybox:latest
run bin/minictr tag busybox "$image"
run bin/minictr push "$image"
run bin/minictr rmi busybox "$image"
run bin/minictr --explain pull "$image"
run bin/minictr images

say "3. A container, step by step (--explain shows each kernel call and its shell equivalent)"
run bin/minictr --explain run --hostname demo --memory 64m "$image" \
	sh -c 'echo "hello from $(hostname), I am PID $$"'

say "4. Namespaces: its own PIDs, host name, network and root"
run bin/minictr run --hostname box "$image" sh -c 'hostname; ps; ip link; ls /'

say "5. cgroups: a 64 MiB buffer in a 16 MiB container is OOM-killed"
run bin/minictr run --memory 16m "$image" dd if=/dev/zero of=/dev/null bs=64M count=1

say "6. cgroups: a fork bomb stopped by --pids-limit 20"
run bin/minictr run --pids-limit 20 "$image" \
	sh -c 'for i in $(seq 100); do sleep 5 & echo -n "$i "; done'

say "7. Privileges: docker's capabilities for root, none for a user"
run bin/minictr run "$image" grep Cap /proc/self/status
run bin/minictr run -u student "$image" sh -c 'id; grep CapEff /proc/self/status; touch /etc/x'

say "8. The exit status is the container's: 3"
run bin/minictr run "$image" sh -c 'exit 3'

say "done: everything the demo created is gone (cgroups, mounts, snapshots, state, the registry)"
