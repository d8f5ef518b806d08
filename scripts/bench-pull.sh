#!/usr/bin/env bash
# Benchmark: pull and unpack a ~200 MB image of 5 layers from a local
# registry, `minictr pull` against `skopeo copy` + `umoci unpack` (the same
# work: download, verify, store, unpack each layer), interleaved so both
# see the same machine; prints both medians and the ratio (target: minictr
# at least 2x faster).
#   scripts/bench-pull.sh [ROUNDS]   (default 7)
# MINICTR_BIN=path uses an existing minictr binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root "$@"
find_go
install_packages skopeo umoci docker-registry curl

rounds=${1:-7}
work=$(mktemp -d /tmp/minictr-bench-pull.XXXXXX)
registry_pid=
cleanup() {
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

minictr=${MINICTR_BIN:-$work/minictr}
if [ -z "${MINICTR_BIN:-}" ]; then
	say "building minictr"
	go build -o "$minictr" ./cmd/minictr
fi

# A free port on 127.0.0.1 for our own registry.
port=$(comm -23 <(seq 5100 5999 | sort) <(ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -u) | shuf -n1)
ref=127.0.0.1:$port/bench/image:latest

say "starting docker-registry on 127.0.0.1:$port (storage in $work/registry)"
cat >"$work/registry.yml" <<CONF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
CONF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

say "making a 5-layer image of ~200 MB (half random bytes, half compressible text)"
umoci init --layout "$work/src" >/dev/null
umoci new --image "$work/src:img"
for i in 1 2 3 4 5; do
	umoci unpack --rootless --image "$work/src:img" "$work/bundle" >/dev/null
	mkdir -p "$work/bundle/rootfs/layer$i"
	head -c 20M /dev/urandom >"$work/bundle/rootfs/layer$i/random.bin"
	head -c 15M /dev/urandom | base64 >"$work/bundle/rootfs/layer$i/text.txt"
	umoci repack --image "$work/src:img" "$work/bundle" >/dev/null
	rm -rf "$work/bundle"
done
skopeo copy --quiet --dest-tls-verify=false "oci:$work/src:img" "docker://$ref"
du -sh "$work/registry" | awk '{print "registry holds " $1}'

pull_minictr() {
	rm -rf "$work/root"
	MINICTR_ROOT=$work/root "$minictr" pull -q "$ref" >/dev/null
}
pull_skopeo_umoci() {
	rm -rf "$work/oci" "$work/unpacked"
	skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/oci:img" >/dev/null
	umoci unpack --image "$work/oci:img" "$work/unpacked" >/dev/null
}
now_ns() { date +%s%N; }
time_ms() { # time_ms FUNC: runs FUNC, prints its wall time in milliseconds
	local t0 t1
	t0=$(now_ns); "$@"; t1=$(now_ns)
	echo $(((t1 - t0) / 1000000))
}

say "warming up (page cache, binaries)"
pull_minictr; pull_skopeo_umoci

say "$rounds rounds, interleaved"
: >"$work/minictr.ms"; : >"$work/skopeo.ms"
for i in $(seq "$rounds"); do
	a=$(time_ms pull_minictr); b=$(time_ms pull_skopeo_umoci)
	echo "$a" >>"$work/minictr.ms"; echo "$b" >>"$work/skopeo.ms"
	printf 'round %2d: minictr %6d ms   skopeo+umoci %6d ms\n' "$i" "$a" "$b"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m=$(median "$work/minictr.ms"); s=$(median "$work/skopeo.ms")
printf '\n%-40s %10s\n' "pull + unpack, 5 layers, ~200 MB" "median"
printf '%-40s %7d ms\n' "minictr pull" "$m"
printf '%-40s %7d ms\n' "skopeo copy + umoci unpack" "$s"
printf '%-40s %7.2fx  (target >= 2.00x)\n' "speed-up (skopeo+umoci / minictr)" "$(awk -v a="$s" -v b="$m" 'BEGIN{print a/b}')"
