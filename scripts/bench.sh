#!/usr/bin/env bash
# Benchmark: `minictr run --rootfs R true` against `runc run` of the same
# busybox root, interleaved in one run so both see the same machine, and
# prints both medians and the ratio (target: minictr at most 1.0x runc).
#   scripts/bench.sh [ROUNDS]   (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages busybox-static runc

rounds=${1:-40}
work=$(mktemp -d /tmp/minictr-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export MINICTR_ROOT=$work/root MINICTR_RUN_ROOT=$work/run

say "building minictr and a busybox root in $work"
go build -o "$work/minictr" ./cmd/minictr
go run ./scripts/mkrootfs "$work/bundle/rootfs"

# runc's bundle: its default spec, made non-interactive and running `true`,
# with the same writable root minictr gives.
(cd "$work/bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"true"/' \
	-e 's/"readonly": true/"readonly": false/' "$work/bundle/config.json"

# now_ns prints a monotonic-enough clock in nanoseconds.
now_ns() { date +%s%N; }
time_us() { # time_us CMD...: runs CMD, prints its wall time in microseconds
	local t0 t1
	t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
	echo $(((t1 - t0) / 1000))
}

say "warming up"
for _ in 1 2 3; do
	"$work/minictr" run --rootfs "$work/bundle/rootfs" true
	runc --root "$work/runc" run --bundle "$work/bundle" "bench-$$-warm" >/dev/null
done

say "$rounds rounds, interleaved"
: >"$work/minictr.us"; : >"$work/runc.us"
for i in $(seq "$rounds"); do
	time_us "$work/minictr" run --rootfs "$work/bundle/rootfs" true >>"$work/minictr.us"
	time_us runc --root "$work/runc" run --bundle "$work/bundle" "bench-$$-$i" >>"$work/runc.us"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m=$(median "$work/minictr.us"); r=$(median "$work/runc.us")
printf '\n%-34s %10s\n' "run a container with \`true\`" "median"
printf '%-34s %8.1f ms\n' "minictr run --rootfs" "$(awk -v v="$m" 'BEGIN{print v/1000}')"
printf '%-34s %8.1f ms\n' "runc run ($(runc --version | head -1 | awk '{print $3}'))" "$(awk -v v="$r" 'BEGIN{print v/1000}')"
printf '%-34s %8.2fx  (target <= 1.00x)\n' "ratio minictr / runc" "$(awk -v a="$m" -v b="$r" 'BEGIN{print a/b}')"
