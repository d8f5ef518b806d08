#!/usr/bin/env bash
# The minictr lab VM: a Debian kernel booted in QEMU with a pure cgroup v2
# hierarchy, the project shared read-only and a results folder read-write.
#
#   scripts/vm.sh shell               an interactive lab shell (students)
#   scripts/vm.sh run 'COMMAND'       boot the lab, run COMMAND as the student's
#                                     shell would (sh -c, in /root), print its
#                                     output and exit with its status
#   scripts/vm.sh test [PATTERN...]   run the test binaries inside the VM,
#                                     e.g. scripts/vm.sh test ./pkg/cgroups/...
#   scripts/vm.sh build               only fetch the kernel and make the initramfs
#   scripts/vm.sh clean               forget the cache (kernel, initramfs, KVM verdict)
#
# No root is needed on the host: the kernel comes from `apt-get download`,
# the initramfs is a cpio archive written by busybox, and QEMU runs as you.
#
# The lab has what the lessons need (scripts/vm/motd lists it): a busybox
# root filesystem at /rootfs, a busybox image in minictr's store, lesson
# 06's layers in /lab/06-images, a registry on 127.0.0.1:5000 holding
# 127.0.0.1:5000/busybox:latest, curl and jq, newuidmap and newgidmap, and
# the shell in the cgroup /lab/shell. /etc/minictr-lab marks it.
#
# Settings (environment):
#   VM_CACHE         cache dir (default: .cache/vm in the repository)
#   VM_ACCEL         kvm or tcg, to skip the automatic choice
#   VM_ALL=1         test every package, not only those with root tests
#   VM_JOBS          test binaries running side by side (default 2)
#   VM_MEMORY        guest memory (default 2G)     VM_CPUS  guest CPUs (default 2)
#   VM_TEST_TIMEOUT  seconds per test binary (default 300)
#   VM_TIMEOUT       seconds for the whole VM run in test mode (default 1200)
#   VM_KERNEL_PKG    kernel package (default: what linux-image-amd64 depends on)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VM_CACHE:-$repo/.cache/vm}
results=$repo/results/vm
memory=${VM_MEMORY:-2G}
cpus=${VM_CPUS:-2}
test_timeout=${VM_TEST_TIMEOUT:-300}
vm_timeout=${VM_TIMEOUT:-1200}
jobs=${VM_JOBS:-2}
# Lesson 06's example layers live in its testscript; the lab gets a copy.
lesson06_layers=$repo/lessons/06-images/testdata/overlay.txtar
# Test binaries too long for one lane run as two jobs: the named top-level
# test (-test.run) and the rest (-test.skip), one in each lane.
split=(cmd_minictr_cli.test:TestScripts)
# Test binaries that run after the lanes, outside their isolation, where a
# student's shell runs: the lesson READMEs' steps (internal/labtest).
lab_lane=(internal_labtest.test)

# Kernel modules the lessons and tests need. The cloud kernel
# (linux-image-cloud-amd64) has no 9p, hence the generic one.
modules=(
	overlay                                  # image layers, container rootfs
	veth bridge br_netfilter dummy           # container networking
	nf_tables nft_chain_nat nft_nat nft_masq # NAT, published ports
	nft_ct nft_redir nft_reject_inet nft_fib_inet nft_compat
	xt_MASQUERADE xt_nat xt_conntrack xt_addrtype
	9p 9pnet_virtio virtio_pci # the shares with the host
)

# install_packages and the package lists (PKGS_VM).
. "$repo/scripts/lib.sh"

say() { echo "vm.sh: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# The host tools this script runs, and the Debian package of each.
check_tools() {
	local missing=() tool pkg
	# As root (CI on a clean machine), install what PKGS_VM lists.
	if [ "$(id -u)" = 0 ] && command -v dpkg-query >/dev/null; then
		install_packages "${PKGS_VM[@]}" >&2
	fi
	# (the lab's curl, jq, newuidmap and newgidmap are the host's)
	for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static \
		modprobe:kmod depmod:kmod xz:xz-utils dpkg-deb:dpkg apt-get:apt \
		apt-cache:apt curl:curl jq:jq newuidmap:uidmap newgidmap:uidmap; do
		tool=${pair%%:*} pkg=${pair#*:}
		PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null || missing+=("$pkg")
	done
	# A dynamically linked busybox cannot run inside the VM, which has no libc.
	if command -v busybox >/dev/null && ldd "$(command -v busybox)" >/dev/null 2>&1; then
		missing+=(busybox-static)
	fi
	# Go builds the test binaries and minictr on the host (sudo and fresh
	# shells often lose /usr/local/go/bin).
	command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH=$PATH:/usr/local/go/bin
	command -v go >/dev/null || die "Go is not installed (https://go.dev/doc/install)"
	[ ${#missing[@]} -eq 0 ] && return
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	if [ "$(id -u)" = 0 ]; then
		install_packages "${missing[@]}" >&2
	else
		die "missing packages; run: sudo apt-get install ${missing[*]}"
	fi
}

# The kernel package: whatever the meta-package linux-image-amd64 (or
# $VM_KERNEL_PKG, e.g. linux-image-6.12-amd64) points at today.
kernel_package() {
	local meta=${VM_KERNEL_PKG:-linux-image-amd64} pkg
	pkg=$(apt-cache depends "$meta" 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -z "$pkg" ] && apt-cache show "$meta" >/dev/null 2>&1; then
		pkg=$meta # already a versioned kernel package
	fi
	if [ -z "$pkg" ]; then
		# Offline or no apt lists: reuse the newest kernel already cached.
		pkg=$(find "$cache" -maxdepth 1 -name 'linux-image-*' -type d -printf '%f\n' 2>/dev/null | sort -V | tail -1)
	fi
	[ -n "$pkg" ] || die "cannot resolve $meta (run apt-get update)"
	echo "$pkg"
}

# Fetch and unpack the kernel once per version: $kdir/root is the unpacked
# package, $kdir/vmlinux the uncompressed kernel.
fetch_kernel() {
	if [ -s "$kdir/vmlinux" ] && [ -d "$kdir/root/lib/modules/$kver" ]; then
		return
	fi
	say "fetching $kpkg into $kdir"
	rm -rf "$kdir"
	mkdir -p "$kdir/download"
	(cd "$kdir/download" && apt-get download "$kpkg" >&2)
	dpkg-deb -x "$kdir"/download/*.deb "$kdir/root"
	# The package ships no modules.dep: depmod builds it, so that modprobe
	# can answer "which .ko files, in which order" below.
	depmod -b "$kdir/root" "$kver"
	# QEMU can boot the ELF vmlinux straight through its PVH entry point,
	# which skips the bzImage self-decompression (about 2.5 s under TCG).
	# vmlinuz is a small loader followed by a compressed stream (xz for
	# Debian 12's 6.1, zstd for 6.12): find and unpack it.
	local vmlinuz=$kdir/root/boot/vmlinuz-$kver offset
	if offset=$(stream_offset '\xfd7zXZ\x00' "$vmlinuz"); then
		# xz stops after the kernel's stream; tail may then die of SIGPIPE on
		# the bytes that follow. The ELF check below is the real test.
		tail -c +"$((offset + 1))" "$vmlinuz" | xz -dc --single-stream >"$kdir/vmlinux.tmp" || true
	elif offset=$(stream_offset '\x28\xb5\x2f\xfd' "$vmlinuz"); then
		command -v zstd >/dev/null || die "this kernel is zstd-compressed: install zstd"
		# zstd complains about the bytes after the stream; the kernel is whole.
		tail -c +"$((offset + 1))" "$vmlinuz" | zstd -dc 2>/dev/null >"$kdir/vmlinux.tmp" || true
	else
		die "no xz or zstd stream in $vmlinuz"
	fi
	[ "$(head -c 4 "$kdir/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] ||
		die "could not extract vmlinux from $vmlinuz"
	mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
	rm -rf "$kdir/download"
}

# stream_offset MAGIC FILE: the byte offset of the first MAGIC in FILE.
stream_offset() {
	local offset
	offset=$(LC_ALL=C grep -obUaP "$1" "$2" | head -1 | cut -d: -f1) || true
	[ -n "$offset" ] && echo "$offset"
}

# The .ko files for $modules and their dependencies, in load order.
module_files() {
	local m
	for m in "${modules[@]}"; do
		modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" ||
			die "kernel $kver has no module $m"
	done | awk '$1 == "insmod" && !seen[$2]++ {print $2}'
}

# The initramfs: static busybox, the init script, the modules. Rebuilt only
# when one of its inputs changes (the key is a hash of them).
build_initramfs() {
	local key tool inputs=("$repo"/scripts/vm/{init,run-test} "$repo/internal/testenv/testenv.go" "$(command -v busybox)" "$0"
		"$repo/scripts/lib.sh" "$lesson06_layers")
	for tool in "${host_tools[@]}"; do
		if command -v "$tool" >/dev/null; then inputs+=("$(command -v "$tool")"); fi
	done
	key=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
	initramfs=$kdir/initramfs-$key.cpio
	[ -s "$initramfs" ] && return
	say "building $initramfs"
	local stage
	stage=$(mktemp -d)
	# mktemp makes 0700 dirs: the VM's root directory would be unreadable to
	# every user but root.
	chmod 755 "$stage"
	# The same busybox root the tests and the demo use (busybox, its applets,
	# passwd and group), plus what only the VM needs.
	(cd "$repo" && go run ./scripts/mkrootfs "$stage")
	mkdir -p "$stage"/{usr/local/bin,etc/minictr-vm,newroot,mnt}
	copy_host_tools "$stage"
	install -m 755 "$repo/scripts/vm/init" "$stage/init"
	install -m 755 "$repo/scripts/vm/run-test" "$stage/etc/minictr-vm/run-test"
	write_etc "$stage"
	# What the lessons use: the busybox root of lessons 01-04 (the same
	# mkrootfs, again) and lesson 06's two layers.
	(cd "$repo" && go run ./scripts/mkrootfs "$stage/rootfs")
	extract_txtar "$lesson06_layers" "$stage/lab/06-images" base/ top/
	# Modules keep their place under lib/modules so `modprobe NAME` works in
	# the VM; etc/minictr-vm/modules is the boot-time load order.
	# Compressed modules (.ko.xz, .ko.zst) are unpacked here, since busybox's
	# insmod reads plain .ko files only.
	local ko rel
	while read -r ko; do
		rel=${ko#"$kdir/root/"}
		mkdir -p "$stage/$(dirname "$rel")"
		case "$ko" in
		*.ko.xz) rel=${rel%.xz} && xz -dc "$ko" >"$stage/$rel" ;;
		*.ko.zst) rel=${rel%.zst} && zstd -qdc "$ko" >"$stage/$rel" ;;
		*) cp "$ko" "$stage/$rel" ;;
		esac
		echo "/$rel" >>"$stage/etc/minictr-vm/modules"
	done < <(module_files)
	cp "$kdir/root/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$kver/"
	depmod -b "$stage" "$kver"
	# newc is the cpio format the kernel unpacks; -R 0:0 makes every file
	# root's without needing root here. Device nodes come from devtmpfs.
	(cd "$stage" && find . | busybox cpio -o -H newc -R 0:0 >"$initramfs.tmp" 2>/dev/null)
	mv "$initramfs.tmp" "$initramfs"
	rm -rf "$stage"
	find "$kdir" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "$(basename "$initramfs")" -delete
}

# The host's own ip (iproute2), util-linux tools, hostname, nft and GNU tar,
# so that the lab answers the commands of the lessons exactly as the host
# does. They are dynamically linked: each comes with the libraries ldd
# names, at the same paths.
host_tools=(ip ipcmk ipcs ipcrm lsns unshare nsenter findmnt setpriv hostname nft iptables tar
	curl jq newuidmap newgidmap)
copy_host_tools() {
	local root=$1 tool path lib
	for tool in "${host_tools[@]}"; do
		path=$(command -v "$tool") || continue
		path=$(readlink -f "$path")
		for lib in "$path" $(ldd "$path" 2>/dev/null | grep -o '/[^ ]*'); do
			mkdir -p "$root$(dirname "$lib")"
			rm -f "$root$lib"
			cp -L --preserve=mode "$lib" "$root$lib"
		done
		# Found first in PATH, before busybox's applet of the same name.
		ln -sf "$path" "$root/usr/local/bin/$tool"
	done
}

# write_etc adds what any Linux host has and tests may read (passwd and
# group come from mkrootfs).
write_etc() {
	local root=$1
	echo minictr-lab >"$root/etc/hostname"
	printf 'PRETTY_NAME="minictr lab"\nNAME="minictr lab"\nID=minictr-lab\n' >"$root/etc/os-release"
	printf '127.0.0.1\tlocalhost minictr-lab\n::1\tlocalhost\n' >"$root/etc/hosts"
	printf 'nameserver 127.0.0.1\n' >"$root/etc/resolv.conf"
	cat >"$root/etc/profile" <<-'EOF'
		export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		export HOME=/root TMPDIR=/tmp
		PS1='minictr-lab:\w# '
		# PID 1 is a shell script, which busybox's plain poweroff cannot ask
		# to stop: power off directly (after flushing /results).
		alias poweroff='sync; poweroff -f' halt='sync; poweroff -f' reboot='sync; poweroff -f'
		# This busybox shell prefers its own applets to PATH: name the host's
		# tools (iproute2's ip, util-linux, nft) explicitly.
		for tool in /usr/local/bin/*; do alias "${tool##*/}=$tool"; done
	EOF
	chmod 1777 "$root/tmp"
	# Lesson 02's user namespaces: root may map 65536 ids from 100000 on;
	# minictr --userns=auto (lesson 13) takes ranges of the "minictr" lines.
	printf 'root:100000:65536\nminictr:200000:655360\n' >"$root/etc/subuid"
	printf 'root:100000:65536\nminictr:200000:655360\n' >"$root/etc/subgid"
}

# extract_txtar FILE DIR PREFIX...: the files of a txtar archive whose names
# start with one of the PREFIXes, written under DIR (a txtar file is the
# lines after its "-- NAME --" line, up to the next one).
extract_txtar() {
	local file=$1 dir=$2
	shift 2
	awk -v dir="$dir" -v prefixes="$*" '
		BEGIN { n = split(prefixes, p, " ") }
		/^-- .* --$/ {
			if (out != "") close(out)
			name = substr($0, 4, length($0) - 6); out = ""
			for (i = 1; i <= n; i++) if (index(name, p[i]) == 1) out = dir "/" name
			if (out != "") {
				d = out; sub(/\/[^\/]*$/, "", d)
				system("mkdir -p \"" d "\""); printf "" >out
			}
			next
		}
		out != "" { print >out }
	' "$file"
	[ -d "$dir" ] || die "no ${*} files in $file"
}

# qemu's common arguments. The VM has no network card (-nic none): the
# lessons build their own networks inside it. panic=-1 plus -no-reboot turn
# a kernel panic into a QEMU exit instead of a hang, and softlockup_panic=1
# makes a CPU stuck in the kernel such a panic, reported at once.
qemu_args() {
	local accel=$1 mode=$2
	local cpu=max accel_opt=tcg,thread=multi
	[ "$accel" = kvm ] && cpu=host accel_opt=kvm
	args=(
		-accel "$accel_opt" -cpu "$cpu" -smp "$cpus" -m "$memory"
		-nic none -no-reboot -display none -vga none
		-kernel "$kdir/vmlinux" -initrd "${boot_initrd:-$initramfs}"
		-append "console=ttyS0 panic=-1 softlockup_panic=1 cgroup_no_v1=all quiet loglevel=3 minictr.mode=$mode"
		-virtfs "local,path=$repo,mount_tag=minictr,security_model=none,readonly=on"
		-virtfs "local,path=$results,mount_tag=results,security_model=none"
	)
}

# KVM where it works: a nested hypervisor may offer /dev/kvm and still crash
# an ordinary guest kernel, so boot once with KVM and keep the verdict.
choose_accel() {
	if [ -n "${VM_ACCEL:-}" ]; then
		accel=$VM_ACCEL
		return
	fi
	local verdict=$kdir/accel
	if [ -s "$verdict" ]; then
		accel=$(cat "$verdict")
		return
	fi
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		say "trying KVM (a test boot of at most 10 s)"
		mkdir -p "$results"
		qemu_args kvm probe
		# (grep without -q reads to the end: qemu must not die of SIGPIPE)
		if timeout 10 qemu-system-x86_64 "${args[@]}" -serial stdio </dev/null 2>&1 |
			grep 'minictr-vm: init reached' >/dev/null; then
			accel=kvm
		else
			say "KVM did not boot this kernel; using software emulation (TCG)"
		fi
	else
		say "no usable /dev/kvm; using software emulation (TCG)"
	fi
	echo "$accel" >"$verdict"
}

# Test binaries: one per package with tests, static (CGO_ENABLED=0) so that
# they run in a VM without a libc. The plan lists NAME TIMEOUT DIR.
#
# Without patterns only the packages whose tests need root run here (their
# tests mention SkipIfNotRoot, [root] or [!root], IsRoot or Geteuid): pure
# unit tests already ran on the host and would only cost time at TCG speed.
build_tests() {
	local patterns=("$@") all=${VM_ALL:-} pkg dir name
	[ ${#patterns[@]} -gt 0 ] && all=1
	[ ${#patterns[@]} -gt 0 ] || patterns=(./...)
	mkdir -p "$results/bin"
	: >"$results/plan"
	local pkgs=() dirs=()
	while read -r pkg dir; do
		[ -n "$pkg" ] || continue
		# (a package that does not even load is kept, to be reported)
		if [ -z "$all" ] && ! needs_root "$dir" && [ -n "$(cd "$repo" && go list -f '{{.ImportPath}}' "$pkg" 2>/dev/null)" ]; then
			continue
		fi
		pkgs+=("$pkg") dirs+=("${dir#"$repo"/}")
	done < <(cd "$repo" && go list -e -f '{{if or .TestGoFiles .XTestGoFiles .Error}}{{.ImportPath}} {{.Dir}}{{end}}' "${patterns[@]}")
	[ ${#pkgs[@]} -gt 0 ] || die "no packages with tests match ${patterns[*]}"
	# A test binary that links our own cgo code (nsenter, which joins a user
	# namespace before the Go runtime starts) is built with cgo and linked
	# statically; every other one is pure Go.
	local cgo
	cgo=$(cgo_tests "${pkgs[@]}")
	# One go command builds the pure Go ones in parallel, each as
	# <last elem>.test (used only when that name is unique); a package that
	# does not compile is built again alone, for its error.
	say "go test -c ${#pkgs[@]} packages: ${pkgs[*]#github.com/minictr/minictr/}"
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$results/bin/" "${pkgs[@]}" >/dev/null 2>&1) || true
	local i flags
	for i in "${!pkgs[@]}"; do
		pkg=${pkgs[$i]} dir=${dirs[$i]}
		name=$(echo "$dir" | tr '/' '_').test
		flags=(CGO_ENABLED=0 go test -c)
		if grep -qxF "$pkg" <<<"$cgo"; then
			flags=(CGO_ENABLED=1 go test -c -ldflags '-linkmode external -extldflags -static')
			rm -f "$results/bin/${pkg##*/}.test"
		fi
		if [ "$(printf '%s\n' "${pkgs[@]##*/}" | grep -cxF "${pkg##*/}")" = 1 ] &&
			[ -x "$results/bin/${pkg##*/}.test" ]; then
			mv "$results/bin/${pkg##*/}.test" "$results/bin/$name"
		elif ! (cd "$repo" && env "${flags[@]}" -o "$results/bin/$name" "$pkg" 2>"$results/$name.build.log"); then
			# Reported as failed at the end; the others still run.
			cat "$results/$name.build.log" >&2
			echo "$name" >>"$results/build-failed"
			continue
		fi
		plan_jobs "$name" "$dir" >>"$results/plan"
	done
	assign_lanes
}

# plan_jobs NAME DIR: the plan's line for a binary, or two for one in
# $split: NAME~TEST runs only TEST, NAME~-TEST all but TEST (run-test reads
# that from the name).
plan_jobs() {
	local s
	for s in "${split[@]}"; do
		if [ "${s%%:*}" = "$1" ]; then
			echo "$1~${s#*:} $test_timeout $2"
			echo "$1~-${s#*:} $test_timeout $2"
			return
		fi
	done
	echo "$1 $test_timeout $2"
}

# Spread the binaries over $jobs lanes, longest first, each to the lane with
# the least work so far; durations come from the last run, or on a first
# run from scripts/vm/durations (a measured run, kept in the repository),
# and 30 s for a binary neither knows.
assign_lanes() {
	local durations=$cache/durations name seconds dir secs
	[ -s "$durations" ] || cp "$repo/scripts/vm/durations" "$durations" 2>/dev/null || touch "$durations"
	while read -r name seconds dir; do
		secs=$(awk -v n="$name" '$1 == n {print $2}' "$durations")
		echo "${secs:-30} $name $seconds $dir"
	done < <(grep -vE "^($(
		IFS='|'
		echo "${lab_lane[*]}"
	)) " "$results/plan") | sort -rn | awk -v jobs="$jobs" '{
		best = 0
		for (l = 1; l < jobs; l++) if (load[l] < load[best]) best = l
		load[best] += $1
		print $2, $3, $4, best + 1
	}' >"$results/plan.lanes"
	local lab
	for lab in "${lab_lane[@]}"; do
		awk -v n="$lab" '$1 == n {print $1, $2, $3, "lab"}' "$results/plan" >>"$results/plan.lanes"
	done
	mv "$results/plan.lanes" "$results/plan"
}

# cgo_tests PKG...: those whose test binary links a package of this module
# that has cgo files.
cgo_tests() {
	local module own
	module=$(cd "$repo" && go list -m)
	own=$(cd "$repo" && go list -e -f '{{if .CgoFiles}}{{.ImportPath}}{{end}}' ./...)
	[ -n "$own" ] || return 0
	(cd "$repo" && go list -e -test -f '{{.ImportPath}} {{join .Deps " "}}' "$@") |
		awk -v own="$own" -v module="$module" '
			BEGIN { n = split(own, list, "\n"); for (i = 1; i <= n; i++) cgo[list[i]] = 1 }
			$1 ~ /\.test$/ {
				for (i = 2; i <= NF; i++) if ($i in cgo) { sub(/\.test$/, "", $1); print $1; next }
			}'
}

remember_duration() {
	local durations=$cache/durations
	{
		grep -v "^$1 " "$durations" 2>/dev/null || true
		echo "$1 $2"
	} >"$durations.tmp"
	mv "$durations.tmp" "$durations"
}

# needs_root DIR: do the package's tests or testscripts ask for root?
needs_root() {
	local dir=$1
	{
		cat "$dir"/*_test.go
		[ ! -d "$dir/testdata" ] || find "$dir/testdata" -type f -name '*.txt*' -exec cat {} +
	} 2>/dev/null | grep -E 'SkipIfNotRoot|\[!?root\]|IsRoot\(\)|Geteuid\(\)' >/dev/null
	# (not grep -q: it would stop reading early, and with pipefail the
	# writer's SIGPIPE would turn a match into a failure)
}

# Read NAME.rc for every planned binary; a missing one means a crash or a
# timeout. Prints a summary and returns non-zero on any failure.
report() {
	local name seconds dir rc secs failed=0 total=0
	printf '\n%-40s %8s %s\n' "TEST BINARY" "SECONDS" "RESULT" >&2
	while read -r name seconds dir _; do
		total=$((total + 1))
		if [ ! -s "$results/$name.rc" ]; then
			printf '%-40s %8s %s\n' "$name" - "NO RESULT (crash or timeout)" >&2
			failed=$((failed + 1))
			continue
		fi
		read -r rc secs <"$results/$name.rc"
		remember_duration "$name" "$secs"
		if [ "$rc" = 0 ]; then
			printf '%-40s %8s %s\n' "$name" "$secs" ok >&2
		else
			printf '%-40s %8s %s\n' "$name" "$secs" "FAIL (exit $rc)" >&2
			failed=$((failed + 1))
			if grep -qE -- '--- FAIL|^panic' "$results/$name.log"; then
				grep -E -B2 -A12 -- '--- FAIL|^panic' "$results/$name.log" | head -60 | sed 's/^/    /' >&2
			else
				tail -15 "$results/$name.log" | sed 's/^/    /' >&2
			fi
		fi
	done <"$results/plan"
	if [ -s "$results/build-failed" ]; then
		while read -r name; do
			printf '%-40s %8s %s\n' "$name" - "BUILD FAILED (see $name.build.log)" >&2
			total=$((total + 1)) failed=$((failed + 1))
		done <"$results/build-failed"
	fi
	if [ -s "$results/leftover-cgroups" ]; then
		say "cgroups left behind in the VM:"
		sed 's/^/    /' "$results/leftover-cgroups" >&2
		failed=$((failed + 1))
	fi
	say "$((total - failed))/$total test binaries passed on cgroup v2 (logs: $results)"
	[ "$failed" = 0 ]
}

prepare() {
	check_tools
	export PATH=$PATH:/sbin:/usr/sbin
	kpkg=$(kernel_package)
	kver=${kpkg#linux-image-}
	kdir=$cache/$kpkg
	fetch_kernel
	build_initramfs
}

cmd_test() {
	local start=$SECONDS
	prepare
	rm -rf "$results"
	build_tests "$@"
	# The lab's programs and store only for the README steps (the lanes
	# bring their own).
	if grep -q ' lab$' "$results/plan"; then build_lab; fi
	choose_accel
	say "booting $kver ($accel, $cpus CPUs, $memory); console log: $results/console.log"
	qemu_args "$accel" test
	local status=0
	timeout "$vm_timeout" qemu-system-x86_64 "${args[@]}" -serial stdio </dev/null 2>&1 |
		tee "$results/console.log" | grep --line-buffered '^minictr-vm:' >&2 || status=$?
	[ "$status" = 0 ] || say "qemu ended with status $status (124: the whole run timed out after ${vm_timeout}s)"
	if [ ! -s "$results/finished" ]; then
		say "the VM did not finish the plan; last console lines:"
		tail -20 "$results/console.log" >&2
		status=1
	fi
	report || status=1
	say "wall time: $((SECONDS - start)) s"
	return "$status"
}

# build_lab: minictr and each lesson's program into $results/bin (the lab
# puts them on PATH), and the lab's part of the initramfs.
build_lab() {
	# Built into the cache, where go build finds the binary of the last run
	# up to date and does not link it again, then linked into /results/bin.
	local bin=$cache/bin
	mkdir -p "$results/bin" "$bin/lessons"
	if [ -d "$repo/cmd/minictr" ]; then
		say "go build ./cmd/minictr"
		local flags=(CGO_ENABLED=0 go build)
		if (cd "$repo" && go list -deps -f '{{if .CgoFiles}}{{.ImportPath}}{{end}}' ./cmd/minictr) |
			grep -q "^$(cd "$repo" && go list -m)/"; then
			flags=(CGO_ENABLED=1 go build -ldflags '-linkmode external -extldflags -static')
		fi
		(cd "$repo" && env "${flags[@]}" -o "$bin/minictr" ./cmd/minictr)
		put "$bin/minictr" "$results/bin/minictr"
	else
		say "note: cmd/minictr does not exist yet; the lab has the lessons only"
	fi
	# The registry comes from /results too, not the initramfs: it starts in
	# the background, and 8 MB less to unpack is a faster boot.
	say "go build ./scripts/labregistry"
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/labregistry" ./scripts/labregistry)
	put "$bin/labregistry" "$results/bin/labregistry"
	# Each lesson's main.go becomes lessonNN in the lab's PATH (there is no
	# Go toolchain inside the VM). One go command builds them all in
	# parallel (as NN-topic); when one does not compile, each is built
	# again alone, for its error, and that one is left out.
	local lesson lessons=() all_built=1
	for lesson in "$repo"/lessons/[0-9][0-9]-*/; do
		[ -f "$lesson/main.go" ] && lessons+=("./lessons/$(basename "$lesson")")
	done
	say "go build ${lessons[*]}"
	(cd "$repo" && CGO_ENABLED=0 go build -o "$bin/lessons/" "${lessons[@]}" 2>/dev/null) || all_built=
	for lesson in "${lessons[@]##*/}"; do
		if [ -z "$all_built" ] && ! (cd "$repo" && CGO_ENABLED=0 go build -o "$bin/lessons/$lesson" "./lessons/$lesson"); then
			say "warning: lessons/$lesson does not build"
			continue
		fi
		put "$bin/lessons/$lesson" "$results/bin/lesson${lesson%%-*}"
	done
	build_lab_cpio
}

# put FILE DEST: a hard link where it can, a copy where it cannot.
put() { ln -f "$1" "$2" 2>/dev/null || cp "$1" "$2"; }

# The lab's own part of the initramfs, a second cpio archive appended to
# the cached one (the kernel unpacks both): the motd with each lesson's
# first command, and the busybox image in minictr's store with its copy
# for the registry. It is made by the minictr just built, so it is keyed by
# that binary; the store takes a fraction of a second to make here, and
# several seconds under emulation.
build_lab_cpio() {
	local motd key stage
	motd=$(
		cat "$repo/scripts/vm/motd"
		lesson_list
	)
	key=$( (
		echo "$motd"
		cat "$results/bin/minictr" 2>/dev/null || true
		echo "$initramfs"
	) | sha256sum | cut -c1-16)
	local lab_cpio=$kdir/lab-$key.cpio
	boot_initrd=$kdir/boot-${initramfs##*initramfs-}
	boot_initrd=${boot_initrd%.cpio}-$key.cpio
	[ -s "$boot_initrd" ] && return
	say "building $lab_cpio"
	stage=$(mktemp -d)
	chmod 755 "$stage"
	mkdir -p "$stage/etc/minictr-vm" "$stage/var/lib"
	echo "$motd" >"$stage/etc/motd"
	if [ -x "$results/bin/minictr" ]; then
		local rootfs
		rootfs=$(mktemp -d)
		(cd "$repo" && go run ./scripts/mkrootfs "$rootfs/root")
		# Owned by root in the image whoever builds it (GNU tar's flags).
		tar -C "$rootfs/root" --owner=0 --group=0 --numeric-owner -c . |
			"$results/bin/minictr" --root "$stage/var/lib/minictr" import --change 'CMD ["sh"]' - busybox >/dev/null
		"$results/bin/minictr" --root "$stage/var/lib/minictr" save -o "$stage/etc/minictr-vm/busybox.tar" busybox
		rm -rf "$rootfs"
	fi
	# Not the "." entry: it would set the mode of the lab's / again.
	(cd "$stage" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 >"$lab_cpio.tmp" 2>/dev/null)
	mv "$lab_cpio.tmp" "$lab_cpio"
	rm -rf "$stage"
	cat "$initramfs" "$lab_cpio" >"$boot_initrd.tmp"
	mv "$boot_initrd.tmp" "$boot_initrd"
	rm -f "$lab_cpio"
	find "$kdir" -maxdepth 1 -name 'boot-*.cpio' ! -name "$(basename "$boot_initrd")" -delete
}

# lesson_list: one motd line per lesson, with the first command of its
# first "console lab" block (internal/labtest runs those blocks), or its
# program's help when the README has none yet.
lesson_list() {
	local dir name first
	echo "  Lessons (/minictr/lessons/NN-*/README.md), and the first command of each:"
	for dir in "$repo"/lessons/[0-9][0-9]-*/; do
		name=$(basename "$dir")
		first=$(awk '/^```+[ ]*console( +host)? +lab/ {inside = 1; next} /^```/ {inside = 0}
			inside && /^\$ / {sub(/^\$ (! )?/, ""); print; exit}' "$dir/README.md" 2>/dev/null)
		[ -n "$first" ] || first="lesson${name%%-*} -h"
		[ ${#first} -le 52 ] || first="${first:0:49}..."
		printf '    %-20s %s\n' "$name" "$first"
	done
}

cmd_shell() {
	prepare
	rm -rf "$results"
	build_lab
	choose_accel
	say "booting the lab ($accel). Leave with 'exit' or Ctrl-A X."
	qemu_args "$accel" shell
	# -serial mon:stdio puts the console (and QEMU's monitor, Ctrl-A C) on
	# this terminal.
	exec qemu-system-x86_64 "${args[@]}" -serial mon:stdio
}

# cmd_run COMMAND: the lab's init runs /results/run.sh as the student's
# shell would and brackets its output on the console with two lines,
# "minictr-vm: run start" and "minictr-vm: run exit STATUS"; what lies
# between is the command's output (stdout and stderr, through a pipe, as
# the README tests see it).
cmd_run() {
	[ $# -eq 1 ] || die "usage: scripts/vm.sh run 'COMMAND'"
	prepare
	rm -rf "$results"
	build_lab
	printf '%s\n' "$1" >"$results/run.sh"
	choose_accel
	qemu_args "$accel" run
	local status=0
	timeout "$vm_timeout" qemu-system-x86_64 "${args[@]}" -serial stdio </dev/null 2>&1 |
		tee "$results/console.log" | tr -d '\r' | awk '
			state == 0 && /^minictr-vm: run start$/ { state = 1; next }
			state == 0 && /^minictr-vm: warning/ { print > "/dev/stderr"; next }
			state == 1 && /^minictr-vm: run exit [0-9]+$/ {
				# init writes a newline before this line: drop it again
				if (held && last != "") print last
				state = 2; next
			}
			state == 1 { if (held) print last; last = $0; held = 1; fflush() }
		' || status=$?
	if [ ! -s "$results/run.rc" ]; then
		say "the lab did not finish the command (qemu status $status); last console lines:"
		tail -20 "$results/console.log" >&2
		return 125
	fi
	return "$(cat "$results/run.rc")"
}

case "${1:-}" in
test) shift && cmd_test "$@" ;;
shell) cmd_shell ;;
run) shift && cmd_run "$@" ;;
build) prepare && say "kernel $kdir/vmlinux, initramfs $initramfs" ;;
clean) rm -rf "$cache" && say "removed $cache" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
