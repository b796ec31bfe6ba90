#!/usr/bin/env bash
# `make bench`: prints figures, asserts nothing.
#  1. The builder against the floor (the same work done by hand), same image
#     and provisioning, one run each, one after the other: phases and the
#     ratio of wall times (goal: <= 1.15).
#  2. The metadata post-processor's one-pass sha256+sha512 hashing against
#     sha256sum alone (goal: >= 1.5x sha256sum's throughput).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudimg-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CHECKPOINT_DISABLE=1 PACKER_PLUGIN_PATH=$work/plugins

image=$("$root/test/e2e/image/build.sh" | tail -n 1)
sum=$(sha256sum "$image" | cut -d ' ' -f 1)
"$root/tools/bin/packer" plugins install --path "$root/packer-plugin-cloudimg" github.com/packer-cloudimg/cloudimg >/dev/null

echo "== builder vs floor ($(nproc) CPUs, image $(basename "$image"))"
start=$(date +%s.%N)
(cd "$root/test/bench/build" && "$root/tools/bin/packer" build -color=false \
	-var "image=$image" -var "checksum=sha256:$sum" -var "output=$work/out" bench.pkr.hcl) > "$work/packer.out" 2>&1 ||
	{ tail -n 40 "$work/packer.out"; exit 1; }
a=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN{print a-b}')
grep -o 'Phases: .*' "$work/packer.out" | sed 's/^/cloudimg-kvm /'

start=$(date +%s.%N)
bash "$root/test/bench/build/floor.sh" "$image" "$work/floor"
b=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN{print a-b}')

printf 'cloudimg-kvm packer build: %.1fs\nfloor script:              %.1fs\nratio a/b:                 %.2f (goal <= 1.15)\n' "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')"

echo
echo "== metadata hashing"
HASH_BENCH_SIZE=${HASH_BENCH_SIZE:-2G} bash "$root/test/bench/hash/run.sh"
