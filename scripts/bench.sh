#!/usr/bin/env bash
# Benchmark: `minictr run --rootfs R true` against `runc run` of the same
# busybox root, and `minictr run IMAGE true` on the same root imported as a
# cached image, interleaved in one run so all see the same machine. Prints
# the medians, the ratio to runc (target: at most 1.0x) and what the image
# path adds (target: under 10 ms).
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

"$work/minictr" images -q >/dev/null # creates the store
tar -C "$work/bundle/rootfs" -c . | "$work/minictr" import --change 'CMD ["true"]' - bench:latest >/dev/null

say "warming up"
for _ in 1 2 3; do
	"$work/minictr" run --rootfs "$work/bundle/rootfs" true
	"$work/minictr" run --rm bench true
	runc --root "$work/runc" run --bundle "$work/bundle" "bench-$$-warm" >/dev/null
done

say "$rounds rounds, interleaved"
: >"$work/minictr.us"; : >"$work/image.us"; : >"$work/runc.us"
for i in $(seq "$rounds"); do
	time_us "$work/minictr" run --rootfs "$work/bundle/rootfs" true >>"$work/minictr.us"
	time_us "$work/minictr" run --rm bench true >>"$work/image.us"
	time_us runc --root "$work/runc" run --bundle "$work/bundle" "bench-$$-$i" >>"$work/runc.us"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m=$(median "$work/minictr.us"); i=$(median "$work/image.us"); r=$(median "$work/runc.us")
ms() { awk -v v="$1" 'BEGIN{printf "%8.1f ms", v/1000}'; }
printf '\n%-40s %11s\n' "run a container with \`true\` ($rounds rounds)" "median"
printf '%-40s %s\n' "minictr run --rootfs DIR" "$(ms "$m")"
printf '%-40s %s\n' "minictr run --rm IMAGE (cached)" "$(ms "$i")"
printf '%-40s %s\n' "runc run ($(runc --version | head -1 | awk '{print $3}'))" "$(ms "$r")"
printf '%-40s %8.2fx  (target <= 1.00x)\n' "ratio minictr --rootfs / runc" "$(awk -v a="$m" -v b="$r" 'BEGIN{print a/b}')"
printf '%-40s %s  (target < 10 ms)\n' "image path adds (IMAGE - --rootfs)" "$(ms "$(awk -v a="$i" -v b="$m" 'BEGIN{print a-b}')")"
