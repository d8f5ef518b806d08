#!/usr/bin/env bash
# Benchmark: `minictr run --rootfs R true` against `runc run` of the same
# busybox root, `minictr run IMAGE true` on the same root imported as a
# cached image, the same two with --userns=auto, and a baseline minictr
# built from an older revision (BASE: by default the last commit before the
# hardening walls), all interleaved round by round so all see the same
# machine. Prints the medians, the ratio to runc (target: at most 1.0x),
# what the image path adds (target: under 10 ms), what the walls add beside
# BASE (target: under 2 ms) and what --userns=auto adds (target: under 5 ms
# where idmapped mounts work).
#   scripts/bench.sh [ROUNDS]            (default 40)
#   BASE=<git revision> scripts/bench.sh (default: the parent of "Merge fr-seccomp")
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages busybox-static runc

rounds=${1:-40}
repo=$PWD
if [ -z "${BASE:-}" ]; then
	# The hardening walls came in after this merge's first parent.
	merge=$(git log --first-parent --format=%H --grep='^Merge fr-seccomp' -1)
	[ -n "$merge" ] || { echo "bench.sh: no \"Merge fr-seccomp\" commit on this branch: set BASE=<rev>" >&2; exit 1; }
	BASE=$merge^1
fi
base_rev=$(git rev-parse --verify "$BASE^{commit}")

work=$(mktemp -d /tmp/minictr-bench.XXXXXX)
cleanup() {
	set +e
	# Anything a killed run left: runc's containers, mounts under $work
	# (deepest first), the base's worktree, then the files.
	if [ -d "$work/runc" ]; then
		for c in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$c"; done
	fi
	findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m"; done
	if [ -d "$work/base-src" ]; then git -C "$repo" worktree remove --force "$work/base-src"; fi
	git -C "$repo" worktree prune
	rm -rf "$work"
}
trap cleanup EXIT
# The benchmark's own subordinate ranges, never the host's /etc/subuid; the
# containers' roots (host uid 100000...) must walk down to the root
# directory and the image store.
echo "minictr:100000:655360" >"$work/subid"
chmod 0711 "$work"
export MINICTR_SUBUID=$work/subid MINICTR_SUBGID=$work/subid
# Each minictr with a store of its own: BASE may keep it another way.
cur() { MINICTR_ROOT=$work/root MINICTR_RUN_ROOT=$work/run "$work/minictr" "$@"; }
base() { MINICTR_ROOT=$work/base-root MINICTR_RUN_ROOT=$work/base-run "$work/minictr-base" "$@"; }

say "building minictr from the tree, and BASE $(git log -1 --format='%h %s' "$base_rev") in a temporary worktree"
go build -o "$work/minictr" ./cmd/minictr
git worktree add -q --detach "$work/base-src" "$base_rev"
(cd "$work/base-src" && go build -o "$work/minictr-base" ./cmd/minictr)
git worktree remove --force "$work/base-src"

say "making a busybox root and runc's bundle in $work"
go run ./scripts/mkrootfs "$work/bundle/rootfs"
# runc's bundle: its default spec, made non-interactive and running `true`,
# with the same writable root minictr gives.
(cd "$work/bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"true"/' \
	-e 's/"readonly": true/"readonly": false/' "$work/bundle/config.json"

say "importing the root as the image bench:latest, for both minictrs"
for m in cur base; do
	$m images -q >/dev/null # creates the store
	tar -C "$work/bundle/rootfs" -c . | $m import --change 'CMD ["true"]' - bench:latest >/dev/null
done

# now_ns prints a monotonic-enough clock in nanoseconds.
now_ns() { date +%s%N; }
time_us() { # time_us CMD...: runs CMD, prints its wall time in microseconds
	local t0 t1
	t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
	echo $(((t1 - t0) / 1000))
}

variants=(rootfs image runc rootfs-base image-base rootfs-auto image-auto)
run_variant() { # run_variant NAME ROUND
	case $1 in
	rootfs) cur run --rootfs "$work/bundle/rootfs" true ;;
	image) cur run --rm bench true ;;
	runc) runc --root "$work/runc" run --bundle "$work/bundle" "bench-$$-$2" ;;
	rootfs-base) base run --rootfs "$work/bundle/rootfs" true ;;
	image-base) base run --rm bench true ;;
	rootfs-auto) cur run --userns=auto --rootfs "$work/bundle/rootfs" true ;;
	image-auto) cur run --userns=auto --rm bench true ;;
	esac
}

say "warming up (the first runs probe overlayfs and idmapped mounts)"
for w in 1 2 3; do
	for v in "${variants[@]}"; do run_variant "$v" "warm$w" >/dev/null 2>"$work/warm.err" || { cat "$work/warm.err" >&2; exit 1; }; done
done
idmap="idmapped layers"
if cur run --userns=auto --rm bench true 2>&1 >/dev/null | grep -q 'copies'; then
	idmap="NO idmapped mounts here: chown'd copies of the layers"
fi

say "$rounds rounds of ${variants[*]}, interleaved"
for i in $(seq "$rounds"); do
	for v in "${variants[@]}"; do
		t=$(time_us run_variant "$v" "$i") # an assignment: a failed run stops the benchmark
		echo "$v $t $i"
	done
done >"$work/times"

median() { grep "^$1 " "$work/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# pdiff A B: the median of the per-round differences A - B, in microseconds.
pdiff() {
	awk -v a="$1" -v b="$2" '$1 == a {x[$3] = $2} $1 == b {y[$3] = $2} END {for (r in x) print x[r] - y[r]}' "$work/times" |
		sort -n | awk '{d[NR]=$1} END {print (NR%2 ? d[(NR+1)/2] : (d[NR/2]+d[NR/2+1])/2)}'
}
m=$(median rootfs); i=$(median image); r=$(median runc)
ms() { awk -v v="$1" 'BEGIN{printf "%8.1f ms", v/1000}'; }
short=$(git rev-parse --short "$base_rev")
printf '\n%-44s %11s\n' "run a container with \`true\` ($rounds rounds)" "median"
printf '%-44s %s\n' "minictr run --rootfs DIR" "$(ms "$m")"
printf '%-44s %s\n' "minictr run --rm IMAGE (cached)" "$(ms "$i")"
printf '%-44s %s\n' "runc run ($(runc --version | head -1 | awk '{print $3}'))" "$(ms "$r")"
printf '%-44s %s\n' "BASE $short: minictr run --rootfs DIR" "$(ms "$(median rootfs-base)")"
printf '%-44s %s\n' "BASE $short: minictr run --rm IMAGE" "$(ms "$(median image-base)")"
printf '%-44s %s\n' "minictr run --userns=auto --rootfs DIR" "$(ms "$(median rootfs-auto)")"
printf '%-44s %s\n' "minictr run --userns=auto --rm IMAGE" "$(ms "$(median image-auto)")"
printf '%-44s %8.2fx  (target <= 1.00x)\n' "ratio minictr --rootfs / runc" "$(awk -v a="$m" -v b="$r" 'BEGIN{print a/b}')"
printf '%-44s %s  (target < 10 ms)\n' "image path adds (IMAGE - --rootfs)" "$(ms "$(awk -v a="$i" -v b="$m" 'BEGIN{print a-b}')")"
# The machine's noise, so that a difference can be read against it.
spread=$(grep "^rootfs " "$work/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {printf "%.1f..%.1f ms", a[int(NR*.1)+1]/1000, a[int(NR*.9)]/1000}')
echo "differences: the median of the per-round differences (minictr --rootfs p10..p90: $spread)"
printf '%-44s %s  (target < 2)\n' "walls add, --rootfs (minictr - BASE)" "$(ms "$(pdiff rootfs rootfs-base)")"
printf '%-44s %s  (target < 2)\n' "walls add, IMAGE (minictr - BASE)" "$(ms "$(pdiff image image-base)")"
printf '%-44s %s  (target < 5)\n' "--userns=auto adds, --rootfs" "$(ms "$(pdiff rootfs-auto rootfs)")"
printf '%-44s %s  (target < 5; %s)\n' "--userns=auto adds, IMAGE" "$(ms "$(pdiff image-auto image)")" "$idmap"
