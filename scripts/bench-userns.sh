#!/usr/bin/env bash
# Benchmark: what --userns=auto adds to a container start, beside
# --userns=host, for `run --rootfs R true` and `run IMAGE true` (where the
# image's layers are idmapped), and the default path beside an older
# minictr (BASE), interleaved round by round so all see the same machine.
# Prints the medians and the differences (target: auto adds under 5 ms).
#   scripts/bench-userns.sh [ROUNDS] [BASE-BINARY]   (default 60, none)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages busybox-static

rounds=${1:-60}
base=${2:-}
work=$(mktemp -d /tmp/minictr-bench-userns.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The benchmark's own subordinate ranges, never the host's /etc/subuid.
echo "minictr:100000:655360" >"$work/subid"
export MINICTR_ROOT=$work/root MINICTR_RUN_ROOT=$work/run MINICTR_SUBUID=$work/subid MINICTR_SUBGID=$work/subid
chmod 0711 "$work"

say "building minictr and a busybox root in $work"
go build -o "$work/minictr" ./cmd/minictr
go run ./scripts/mkrootfs "$work/rootfs"
"$work/minictr" images -q >/dev/null
tar -C "$work/rootfs" -c . | "$work/minictr" import --change 'CMD ["true"]' - bench:latest >/dev/null

now_ns() { date +%s%N; }
time_us() { # time_us CMD...: runs CMD, prints its wall time in microseconds
	local t0 t1
	t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
	echo $(((t1 - t0) / 1000))
}

variants=(rootfs-host rootfs-auto image-host image-auto)
[ -n "$base" ] && variants+=(rootfs-base image-base)
run_variant() {
	case $1 in
	rootfs-host) time_us "$work/minictr" run --userns=host --rootfs "$work/rootfs" true ;;
	rootfs-auto) time_us "$work/minictr" run --userns=auto --rootfs "$work/rootfs" true ;;
	image-host) time_us "$work/minictr" run --userns=host bench true ;;
	image-auto) time_us "$work/minictr" run --userns=auto bench true ;;
	rootfs-base) time_us "$base" run --rootfs "$work/rootfs" true ;;
	image-base) time_us "$base" run bench true ;;
	esac
}
# A first round of each, not counted: the probes (overlay, idmap) run once.
for v in "${variants[@]}"; do run_variant "$v" >/dev/null; done
say "$rounds rounds of ${variants[*]}, interleaved"
for ((i = 0; i < rounds; i++)); do
	for v in "${variants[@]}"; do echo "$v $(run_variant "$v") $i"; done
done >"$work/times"

median() { grep "^$1 " "$work/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for v in "${variants[@]}"; do
	printf '%-12s median %6.2f ms\n' "$v" "$(echo "$(median "$v") / 1000" | bc -l)"
done
# pdiff A B: the median of the per-round differences A - B, in ms.
pdiff() {
	awk -v a="$1" -v b="$2" '$1 == a {x[$3] = $2} $1 == b {y[$3] = $2}
		END {for (r in x) print x[r] - y[r]}' "$work/times" | sort -n |
		awk '{d[NR]=$1} END {printf "%6.2f", d[int((NR+1)/2)] / 1000}'
}
for k in rootfs image; do
	echo "$k: --userns=auto adds $(pdiff $k-auto $k-host) ms (median of per-round differences)"
	if [ -n "$base" ]; then echo "$k: --userns=host beside BASE: $(pdiff $k-host $k-base) ms"; fi
done
