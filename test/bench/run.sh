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
#  4. The real-size job (issue #17): the seed's job on an 8 GiB disk whose
#     provisioning writes ~2.3 GB from a data disk of real Debian packages
#     (test/bench/build/realsize-data.sh, realsize.sh), compressed output,
#     stock (zlib, its only choice) against cloudimg-kvm (zstd), alternating
#     BENCH_REALSIZE_RUNS runs of each (default BENCH_RUNS, else 2). Per run
#     and as medians: wall time, the post-boot phases, output size, the
#     floor (qemu-img convert -c -o compression_type=zstd of the same data
#     plus one sha256sum read of the result, timed in the same run) and the
#     metadata hashing's throughput against sha256sum on the output.
#     BENCH_LAYERS (default 3) sets how many 0.7 GB copies the guest writes.
#  5. The registry (issue #22): pushing the real-size job's image (kept from
#     its last run; without that part, BENCH_REGISTRY_IMAGE or 1.1 GB of
#     random data) to CNCF Distribution on 127.0.0.1 (Debian's
#     docker-registry, plain HTTP, a fresh storage per push) with the
#     plugin's code against `oras push` of the same bytes, and pulling it
#     back as `iso_url = "oci://…"` does against `oras pull` (goals: time
#     ratio <= 1.0 both ways; the pushing process's peak RSS <= 64 MiB,
#     read from its /proc/self/status VmHWM; oras's from GNU time's %M).
#     `skopeo copy` is printed for information only: it recompresses.
#  6. A node's first boot (issue #24): the seed's job's output against its
#     source image, each booted with a new NoCloud seed of the same shape by
#     test/e2e/image/smoke.sh, alternating BENCH_FIRSTBOOT_RUNS times (default
#     BENCH_RUNS): seconds from QEMU's start to cloud-init done (SSH up
#     before), medians compared (goal: ratio <= 1.1: the reset adds no
#     first-boot work).
#  BENCH_ONLY="seedjob floor hash realsize registry firstboot" (the default) picks the parts.
set -euo pipefail
# One { } group: bash parses the whole script before running it, so editing
# the file during a run cannot derail that run.
{
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudimg-bench.XXXXXX")
# BENCH_LOG_DIR: where to keep every build's Packer output (default: nowhere).
trap '[ -z "${BENCH_LOG_DIR:-}" ] || { mkdir -p "$BENCH_LOG_DIR"; cp "$work"/*.out "$BENCH_LOG_DIR"/ 2>/dev/null; }; rm -rf "$work"' EXIT
export CHECKPOINT_DISABLE=1 PACKER_PLUGIN_PATH=$work/plugins

only=" ${BENCH_ONLY:-seedjob floor hash realsize registry firstboot} "
want() { [[ $only == *" $1 "* ]]; }
# The parts that run builds need the test image and both plugins.
if want seedjob || want floor || want realsize || want firstboot; then
image=$("$root/test/e2e/image/build.sh" | tail -n 1)
sum=$(sha256sum "$image" | cut -d ' ' -f 1)
"$root/tools/bin/packer" plugins install --path "$root/packer-plugin-cloudimg" github.com/packer-cloudimg/cloudimg >/dev/null
"$root/tools/bin/packer" plugins install --path "${QEMU_PLUGIN:-$root/tools/bin/packer-plugin-qemu}" github.com/hashicorp/qemu >/dev/null
fi

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
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ratio A B [DECIMALS]: A / B, to DECIMALS places (default 2).
ratio() { awk -v a="$1" -v b="$2" -v f="%.${3:-2}f" 'BEGIN { printf f, a / b }'; }
# at NAME PATTERN: the second (from the first line of NAME's output) at
# which the first line matching PATTERN was printed.
at() {
	awk -F': ' -v re="$2" '
		function t(s) { gsub(/[-T:Z]/, " ", s); return mktime(s) }
		!/^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T/ { next }
		!t0 { t0 = t($1) }
		$0 ~ re { print t($1) - t0; found = 1; exit }
		END { if (!found) print 0 }' "$work/$1.out"
}
phase() { { grep -o "Phases: .*" "$work/$1.out" | grep -o "$2 [0-9.]*" || echo "- 0"; } | head -n 1 | cut -d ' ' -f 2; }
size() { stat -c %s "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
timeit() { local t; t=$(date +%s.%N); "$@" >/dev/null; secs "$t"; }

echo "== $(nproc) CPUs, accelerator $accel, image $(basename "${image:-none}"), $runs runs of each build, alternating"
echo "   (emulated boots vary by several seconds from run to run: compare the medians)"
if want seedjob; then
echo
echo "-- issue #8: the seed's job, stock qemu builder (classic template) vs cloudimg-kvm (reset + metadata)"
cs=() ds=()
for i in $(seq "$runs"); do
	c=$(packer_build "stock-$i" stock.pkr.hcl -only=qemu.stock -var "output=$work/stock-$i" -var "accelerator=$accel")
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

if want realsize; then
echo
echo "-- issue #17: the real-size job, compressed: stock qemu builder (zlib) vs cloudimg-kvm (zstd)"
rruns=${BENCH_REALSIZE_RUNS:-${BENCH_RUNS:-2}}
layers=${BENCH_LAYERS:-3}
data=$work/benchdata.raw
bytes=$(bash "$root/test/bench/build/realsize-data.sh" "$data")
printf 'data disk: %s of packages and their unpacked trees; %s layers; %d runs of each build\n' \
	"$(numfmt --to=iec "$bytes")" "$layers" "$rruns"
(cd "$root" && go build -o "$work/hashbench" ./test/bench/hash)
sw=() cw=() ss=() cs_=() cp=() fl=() hr=() sp=() cpre=()
for i in $(seq "$rruns"); do
	st=$(packer_build "stock-realsize-$i" stock.pkr.hcl -only=qemu.realsize -var "output=$work/stock-realsize-$i" \
		-var "accelerator=$accel" -var "data=$data" -var "layers=$layers")
	ck=$(packer_build "realsize-$i" bench.pkr.hcl -only=cloudimg-kvm.realsize -var "output=$work/realsize-$i" \
		-var "data=$data" -var "layers=$layers")
	sout=$work/stock-realsize-$i/realsize.qcow2 cout=$work/realsize-$i/realsize.qcow2
	# The stock builder's post-boot phases from its timestamps (1 s steps):
	# halt → convert → end.
	s_halt=$(at "stock-realsize-$i" 'Gracefully halting|Halting the virtual machine') s_conv=$(at "stock-realsize-$i" 'Converting hard drive')
	s_end=$(awk -F': ' 'function t(s) { gsub(/[-T:Z]/, " ", s); return mktime(s) }
		/^[0-9][0-9][0-9][0-9]-/ { if (!t0) t0 = t($1); last = t($1) } END { print last - t0 }' "$work/stock-realsize-$i.out")
	# cloudimg-kvm's: the builder's own phase times, then the metadata
	# post-processor from its timestamps (Phases: line → repository updated).
	c_shut=$(phase "realsize-$i" shutdown) c_conv=$(phase "realsize-$i" convert)
	c_meta=$(( $(at "realsize-$i" 'Added .* to the repository') - $(at "realsize-$i" 'Phases: ') ))
	c_post=$(awk -v a="$c_shut" -v b="$c_conv" -v c="$c_meta" 'BEGIN { print a + b + c }')
	# The floor: the same data (cloudimg-kvm's output, uncompressed first,
	# untimed) compressed by qemu-img with zstd, then read once by sha256sum.
	qemu-img convert -f qcow2 -O qcow2 "$cout" "$work/floor-in.qcow2"
	f_conv=$(timeit qemu-img convert -c -f qcow2 -O qcow2 -o compression_type=zstd "$work/floor-in.qcow2" "$work/floor-out.qcow2")
	f_sum=$(timeit sha256sum "$work/floor-out.qcow2")
	floor=$(awk -v a="$f_conv" -v b="$f_sum" 'BEGIN { print a + b }')
	# Hashing throughput on the output, page cache warm (just read above).
	cat "$cout" >/dev/null
	h_go=$("$work/hashbench" -file "$cout" -algos sha256,sha512 | sed -n 's/^seconds=//p')
	h_sum=$(timeit sha256sum "$cout")
	# Up to the power-off: the guest's own boot and the same provisioning,
	# which no builder can shorten under one accelerator.
	s_pre=$s_halt c_pre=$(awk -v a="$ck" -v b="$c_post" 'BEGIN { print a - b }')
	sp+=("$s_pre") cpre+=("$c_pre")
	sw+=("$st") cw+=("$ck") ss+=("$(size "$sout")") cs_+=("$(size "$cout")") cp+=("$c_post") fl+=("$floor")
	hr+=("$(awk -v a="$h_sum" -v b="$h_go" 'BEGIN { printf "%.2f", a / b }')")
	printf 'run %d: stock qemu v1.0.9 %6.1fs  post-boot: shutdown %ds, image written %ds (1 s steps)  output %s\n' \
		"$i" "$st" "$(( s_conv - s_halt ))" "$(( s_end - s_conv ))" "$(mb "$(size "$sout")")"
	printf '       cloudimg-kvm      %6.1fs  post-boot: shutdown %.1fs, image written %.1fs, metadata written %ds (1 s steps)  output %s\n' \
		"$ck" "$c_shut" "$c_conv" "$c_meta" "$(mb "$(size "$cout")")"
	printf '       %s\n' "$(phases "realsize-$i")"
	printf '       up to the power-off: stock %ds, cloudimg-kvm %.1fs\n' "$s_pre" "$c_pre"
	printf '       guest:%s\n' "$(grep -o 'bench: the provisioning wrote .*' "$work/realsize-$i.out" | head -n 1 | cut -c 7-)"
	printf '       floor: convert -c zstd %.1fs + sha256sum %.1fs = %.1fs  (%s)\n' "$f_conv" "$f_sum" "$floor" "$(mb "$(size "$work/floor-out.qcow2")")"
	printf '       hashing %s MB: sha256+sha512 one pass %s MB/s, sha256sum %s MB/s\n' \
		"$(( $(size "$cout") / 1000000 ))" "$(rate "$(size "$cout")" "$h_go")" "$(rate "$(size "$cout")" "$h_sum")"
	printf '       ratios: wall %s, output size %s, post-boot/floor %s (without shutdown %s), hashing %sx\n' \
		"$(ratio "$ck" "$st")" "$(ratio "$(size "$cout")" "$(size "$sout")" 3)" "$(ratio "$c_post" "$floor")" \
		"$(ratio "$(awk -v a="$c_conv" -v c="$c_meta" 'BEGIN { print a + c }')" "$floor")" "${hr[-1]}"
	if want registry; then mv "$cout" "$work/registry-image.qcow2"; fi
	rm -rf "$work/stock-realsize-$i" "$work/realsize-$i" "$work/floor-in.qcow2" "$work/floor-out.qcow2"
done
printf 'median: wall stock %.1fs, cloudimg-kvm %.1fs, ratio %s (goal <= 0.6)\n' "$(median "${sw[@]}")" "$(median "${cw[@]}")" "$(ratio "$(median "${cw[@]}")" "$(median "${sw[@]}")")"
printf '        up to the power-off: stock %.1fs, cloudimg-kvm %.1fs; after it: stock %.1fs, cloudimg-kvm %.1fs\n' \
	"$(median "${sp[@]}")" "$(median "${cpre[@]}")" "$(awk -v a="$(median "${sw[@]}")" -v b="$(median "${sp[@]}")" 'BEGIN { print a - b }')" \
	"$(median "${cp[@]}")"
printf '        output stock %s, cloudimg-kvm %s, ratio %s (goal <= 0.9)\n' "$(mb "$(median "${ss[@]}")")" \
	"$(mb "$(median "${cs_[@]}")")" "$(ratio "$(median "${cs_[@]}")" "$(median "${ss[@]}")" 3)"
printf '        post-boot cloudimg-kvm %.1fs, floor %.1fs, ratio %s (goal <= 1.2)\n' "$(median "${cp[@]}")" "$(median "${fl[@]}")" "$(ratio "$(median "${cp[@]}")" "$(median "${fl[@]}")")"
printf '        hashing sha256+sha512 against sha256sum %.2fx (goal >= 1.5)\n' "$(median "${hr[@]}")"
fi

if want registry; then
echo
echo "-- issue #22: pushing to and pulling from a registry on 127.0.0.1: the plugin's code vs oras"
img=${BENCH_REGISTRY_IMAGE:-$work/registry-image.qcow2}
if [ ! -f "$img" ]; then
	img=$work/registry-image.qcow2
	echo "no real-size image: using 1.1 GB of random data (incompressible, like a compressed qcow2)"
	head -c 1100M /dev/urandom > "$img"
fi
(cd "$root" && go build -o "$work/regbench" ./test/bench/registry)
oras=$root/tools/bin/oras
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# start_registry: a fresh storage each time, so that every push sends every
# byte; loopback only (Debian's shipped config listens everywhere).
start_registry() {
	rm -rf "$work/registry"; mkdir -p "$work/registry/data"
	cat > "$work/registry/config.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
	docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
	regpid=$!
	until curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; do
		kill -0 "$regpid" 2>/dev/null || { echo "the registry did not start:"; cat "$work/registry.log"; exit 1; }
		sleep 0.2
	done
}
stop_registry() { kill "$regpid"; wait "$regpid" 2>/dev/null || true; }
trap 'kill "${regpid:-}" 2>/dev/null; [ -z "${BENCH_LOG_DIR:-}" ] || { mkdir -p "$BENCH_LOG_DIR"; cp "$work"/*.out "$BENCH_LOG_DIR"/ 2>/dev/null; }; rm -rf "$work"' EXIT
rsum=$(sha256sum "$img" | cut -d ' ' -f 1)
cat "$img" >/dev/null # page cache warm for every contender
printf 'image: %s (%s)
' "$(basename "$img")" "$(mb "$(size "$img")")"
rr=${BENCH_REGISTRY_RUNS:-3}
pp=() op=() pr=() orr=() pl=() ol=()
for i in $(seq "$rr"); do
	start_registry
	line=$("$work/regbench" -mode push -ref "127.0.0.1:$port/bench/nodes" -file "$img" -sha256 "$rsum" -layout artifact)
	p_s=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line") p_rss=$(sed -n 's/.*peak_rss_kib=\([0-9]*\).*/\1/p' <<<"$line")
	ref=$(sed -n 's/.*ref=oci:\/\/\(.*\)/\1/p' <<<"$line")
	rm -f "$work/pulled.qcow2"
	l_s=$("$work/regbench" -mode pull -ref "$ref" -file "$work/pulled.qcow2" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
	[ "$(sha256sum "$work/pulled.qcow2" | cut -d ' ' -f 1)" = "$rsum" ] || { echo "the pulled disk differs"; exit 1; }
	stop_registry
	start_registry
	(cd "$(dirname "$img")" && /usr/bin/time -f '%e %M' -o "$work/oras.time" "$oras" push --plain-http "127.0.0.1:$port/bench/oras:bench" \
		"$(basename "$img"):application/vnd.packer-cloudimg.disk.qcow2" >/dev/null)
	read -r o_s o_rss <"$work/oras.time"
	rm -rf "$work/oras-pull"; mkdir -p "$work/oras-pull"
	o_l=$(timeit "$oras" pull --plain-http -o "$work/oras-pull" "127.0.0.1:$port/bench/oras:bench")
	stop_registry
	pp+=("$p_s") op+=("$o_s") pr+=("$p_rss") orr+=("$o_rss") pl+=("$l_s") ol+=("$o_l")
	printf 'run %d: push: plugin %.1fs (peak RSS %d MiB), oras %.1fs (peak RSS %d MiB); pull: plugin %.1fs, oras %.1fs\n' \
		"$i" "$p_s" "$(( p_rss / 1024 ))" "$o_s" "$(( o_rss / 1024 ))" "$l_s" "$o_l"
	rm -rf "$work/oras-pull" "$work/pulled.qcow2"
done
if command -v skopeo >/dev/null; then
	start_registry
	mkdir -p "$work/oci-layout"
	"$oras" push --plain-http --oci-layout "$work/oci-layout:bench" "$img:application/vnd.oci.image.layer.v1.tar" >/dev/null 2>&1 || true
	s_s=$(timeit skopeo copy --dest-tls-verify=false "oci:$work/oci-layout:bench" "docker://127.0.0.1:$port/bench/skopeo:bench" 2>/dev/null || echo "-")
	stop_registry
	printf 'skopeo copy of the same bytes: %ss (for information: it recompresses layers, not a like baseline)\n' "$s_s"
fi
printf 'median: push plugin %.1fs, oras %.1fs, ratio %s (goal <= 1.0); peak RSS of the pushing process %d MiB (goal <= 64), oras %d MiB\n' \
	"$(median "${pp[@]}")" "$(median "${op[@]}")" "$(ratio "$(median "${pp[@]}")" "$(median "${op[@]}")")" \
	"$(( $(median "${pr[@]}") / 1024 ))" "$(( $(median "${orr[@]}") / 1024 ))"
printf '        pull plugin %.1fs, oras %.1fs, ratio %s (goal <= 1.0)\n' "$(median "${pl[@]}")" "$(median "${ol[@]}")" \
	"$(ratio "$(median "${pl[@]}")" "$(median "${ol[@]}")")"
fi

if want firstboot; then
echo
echo "-- issue #24: a node's first boot (QEMU start to cloud-init done), the built image vs its source, same seed shape"
fruns=${BENCH_FIRSTBOOT_RUNS:-$runs}
packer_build firstboot bench.pkr.hcl -only=cloudimg-kvm.seedjob -var "output=$work/firstboot" >/dev/null
# boot IMG NAME: smoke.sh's "cloud-init done after Ns" (from QEMU's start).
boot() {
	SMOKE_ACCEL=$accel bash "$root/test/e2e/image/smoke.sh" "$1" >"$work/$2.out" 2>&1 ||
		{ tail -n 30 "$work/$2.out" >&2; return 1; }
	sed -n 's/.*cloud-init done after \([0-9.]*\)s$/\1/p' "$work/$2.out" | head -n 1
}
bb=() sb=()
for i in $(seq "$fruns"); do
	b=$(boot "$work/firstboot/seedjob.qcow2" "firstboot-built-$i")
	s=$(boot "$image" "firstboot-source-$i")
	bb+=("$b") sb+=("$s")
	printf 'run %d: built image %ss, source image %ss, ratio %s\n' "$i" "$b" "$s" "$(ratio "$b" "$s")"
done
printf 'median: built %ss, source %ss, ratio %s (goal <= 1.1)\n' "$(median "${bb[@]}")" "$(median "${sb[@]}")" \
	"$(ratio "$(median "${bb[@]}")" "$(median "${sb[@]}")")"
rm -rf "$work/firstboot"
fi

if want hash; then
echo
echo "== metadata hashing"
HASH_BENCH_SIZE=${HASH_BENCH_SIZE:-2G} bash "$root/test/bench/hash/run.sh"
fi
exit
}
