#!/usr/bin/env bash
# `make bench`: prints figures, asserts nothing.
#  1. The seed's job (issue #8): the stock qemu builder with the classic
#     template against cloudimg-kvm doing the same job with its reset
#     provisioner and metadata post-processor (goal: ratio <= 0.9).
#  2. The builder against the floor (the same work done by hand), same image
#     and provisioning (issue #4, goal: ratio <= 1.15).
#  All builds run one after the other on the same image, BENCH_RUNS times
#  each (default 3), alternating; the medians are compared.
#  3. The metadata post-processor's one-pass sha256+sha512 hashing against
#     sha256sum alone (goal: >= 1.5x sha256sum's throughput).
#  BENCH_ONLY="seedjob floor hash" (the default) picks the parts to run.
set -euo pipefail
# One { } group: bash parses the whole script before running it, so editing
# the file during a run cannot derail that run.
{
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudimg-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CHECKPOINT_DISABLE=1 PACKER_PLUGIN_PATH=$work/plugins

image=$("$root/test/e2e/image/build.sh" | tail -n 1)
sum=$(sha256sum "$image" | cut -d ' ' -f 1)
"$root/tools/bin/packer" plugins install --path "$root/packer-plugin-cloudimg" github.com/packer-cloudimg/cloudimg >/dev/null
"$root/tools/bin/packer" plugins install --path "$root/tools/bin/packer-plugin-qemu" github.com/hashicorp/qemu >/dev/null

accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
secs() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN{print a-b}'; }
# packer_build NAME TEMPLATE FLAGS...: one `packer build`, its output in
# $work/NAME.out; prints the wall time in seconds.
packer_build() {
	local name=$1 template=$2 t; shift 2
	t=$(date +%s.%N)
	(cd "$root/test/bench/build" && "$root/tools/bin/packer" build -color=false -timestamp-ui \
		-var "image=$image" -var "checksum=sha256:$sum" "$@" "$template") > "$work/$name.out" 2>&1 ||
		{ tail -n 40 "$work/$name.out" >&2; return 1; }
	secs "$t"
}
# timeline NAME: when the stock builder's visible phases began, in seconds
# from the first line of its output (-timestamp-ui has one-second steps).
timeline() {
	awk -F': ' '
		function t(s) { gsub(/[-T:Z]/, " ", s); return mktime(s) }
		!/^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T/ { next }
		!t0 { t0 = t($1) }
		{ last = t($1) }
		/Waiting for SSH to become available/ && !a { a = 1; printf " wait-ssh@%ds", t($1) - t0 }
		/Connected to SSH!/ && !b { b = 1; printf " ssh@%ds", t($1) - t0 }
		/Provisioning with shell script/ && !c { c = 1; printf " provision@%ds", t($1) - t0 }
		/Halting the virtual machine|Gracefully halting/ && !d { d = 1; printf " halt@%ds", t($1) - t0 }
		/Converting hard drive/ && !e { e = 1; printf " convert@%ds", t($1) - t0 }
		END { printf " end@%ds\n", last - t0 }' "$work/$1.out"
}
phases() { grep -o 'Phases: .*' "$work/$1.out" | head -n 1; }

runs=${BENCH_RUNS:-3}
only=" ${BENCH_ONLY:-seedjob floor hash} "
want() { [[ $only == *" $1 "* ]]; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== $(nproc) CPUs, accelerator $accel, image $(basename "$image"), $runs runs of each build, alternating"
echo "   (emulated boots vary by several seconds from run to run: compare the medians)"
if want seedjob; then
echo
echo "-- issue #8: the seed's job, stock qemu builder (classic template) vs cloudimg-kvm (reset + metadata)"
cs=() ds=()
for i in $(seq "$runs"); do
	c=$(packer_build "stock-$i" stock.pkr.hcl -var "output=$work/stock-$i" -var "accelerator=$accel")
	d=$(packer_build "seedjob-$i" bench.pkr.hcl -only=cloudimg-kvm.seedjob -var "output=$work/seedjob-$i")
	cs+=("$c") ds+=("$d")
	printf 'run %d: stock qemu v1.0.9 %6.1fs  timeline:%s\n' "$i" "$c" "$(timeline "stock-$i")"
	printf '       cloudimg-kvm      %6.1fs  %s\n' "$d" "$(phases "seedjob-$i")"
	printf '       ratio %s\n' "$(ratio "$d" "$c")"
done
c=$(median "${cs[@]}") d=$(median "${ds[@]}")
printf 'median: stock %.1fs, cloudimg-kvm %.1fs, ratio %s (goal <= 0.9)\n' "$c" "$d" "$(ratio "$d" "$c")"
printf 'output sizes: stock %s, cloudimg-kvm %s\n' \
	"$(du -h --apparent-size "$work/stock-1/stock.qcow2" | cut -f 1)" "$(du -h --apparent-size "$work/seedjob-1/seedjob.qcow2" | cut -f 1)"
fi

if want floor; then
echo
echo "-- issue #4: cloudimg-kvm vs the floor (the same work by hand)"
as=() bs=()
for i in $(seq "$runs"); do
	a=$(packer_build "floor-$i" bench.pkr.hcl -only=cloudimg-kvm.floor -var "output=$work/floor-packer-$i")
	t=$(date +%s.%N)
	bash "$root/test/bench/build/floor.sh" "$image" "$work/floor-$i" | sed 's/^/       /'
	b=$(secs "$t")
	as+=("$a") bs+=("$b")
	printf 'run %d: cloudimg-kvm %6.1fs  %s\n' "$i" "$a" "$(phases "floor-$i")"
	printf '       floor script %6.1fs\n' "$b"
	printf '       ratio %s\n' "$(ratio "$a" "$b")"
done
a=$(median "${as[@]}") b=$(median "${bs[@]}")
printf 'median: cloudimg-kvm %.1fs, floor %.1fs, ratio %s (goal <= 1.15)\n' "$a" "$b" "$(ratio "$a" "$b")"
fi

if want hash; then
echo
echo "== metadata hashing"
HASH_BENCH_SIZE=${HASH_BENCH_SIZE:-2G} bash "$root/test/bench/hash/run.sh"
fi
exit
}
