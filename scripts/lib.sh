# Shared by the scripts in this folder: source it, do not run it.
# shellcheck shell=bash

# say prints what the script is doing, so a reader can follow along.
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# as_root re-runs the calling script through sudo when it is not root.
# Machines without sudo (containers, CI) run the scripts as root directly.
# The scripts have changed to the repository's root by now, so they re-run
# as scripts/NAME from here, wherever they were started from.
as_root() {
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null; then
			say "needs root: re-running through sudo"
			exec sudo --preserve-env=PATH,GOPATH,GOCACHE,GOMODCACHE,GOFLAGS,GOPROXY "$PWD/scripts/$(basename "$0")" "$@"
		fi
		echo "$0: needs root, and there is no sudo here" >&2
		exit 1
	fi
}

# find_go puts Go on PATH: sudo and fresh shells often lose /usr/local/go/bin.
find_go() {
	if ! command -v go >/dev/null; then
		for d in /usr/local/go/bin /usr/lib/go/bin; do
			[ -x "$d/go" ] && export PATH="$d:$PATH"
		done
	fi
	command -v go >/dev/null || { echo "Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
}

# install_packages installs the Debian packages that are missing, once.
install_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The packages each kind of work needs, in one place.
PKGS_RUN=(busybox-static docker-registry tar)        # the demo's image and its local registry
PKGS_TEST=(busybox-static runc util-linux procps iproute2 tar curl jq
	docker-registry apache2-utils skopeo umoci podman)  # peers for the interop tests
# The lab VM (scripts/vm.sh): QEMU, the initramfs tools, and the host tools
# the lab carries (curl, jq, newuidmap/newgidmap for lesson 02).
PKGS_VM=(qemu-system-x86 busybox-static kmod xz-utils dpkg apt curl jq uidmap)

# start_registry DIR starts Debian's docker-registry on a free port of
# 127.0.0.1 with its storage in DIR, sets REGISTRY=127.0.0.1:PORT, and
# registers its teardown with the script's EXIT trap (via stop_registry).
start_registry() {
	local dir=$1 port
	mkdir -p "$dir/data"
	for port in $(seq 5000 5100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
	done
	# Our own configuration: loopback only, storage in DIR, no auth (the
	# packaged default wants an htpasswd file).
	cat >"$dir/config.yml" <<-CONF
	version: 0.1
	log: {level: error}
	storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
	http: {addr: 127.0.0.1:$port}
	CONF
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	REGISTRY_PID=$!
	REGISTRY=127.0.0.1:$port
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "docker-registry did not start; its log:" >&2
	cat "$dir/log" >&2
	return 1
}

stop_registry() {
	if [ -n "${REGISTRY_PID:-}" ]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		wait "$REGISTRY_PID" 2>/dev/null || true # its status is SIGTERM's, not ours
	fi
	REGISTRY_PID=
}
