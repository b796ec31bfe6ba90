#!/usr/bin/env bash
# Compare imagemeta.HashFile (sha256+sha512 in one concurrent pass) with
# GNU sha256sum on the same multi-GiB file of random data.
#
#   test/bench/hash/run.sh [DIR]
#
# DIR (default $TMPDIR, else /tmp) receives the temporary data file, which
# is removed at the end. HASH_BENCH_SIZE sets its size (head -c syntax,
# default 2G = 2 GiB). HASH_BENCH_RUNS sets the runs per tool (default 3;
# the median is reported). The file is read once before timing so both
# tools hash from the page cache. Only figures are printed; nothing is
# asserted. MB/s means 10^6 bytes per second.
set -euo pipefail

size_spec=${HASH_BENCH_SIZE:-2G}
runs=${HASH_BENCH_RUNS:-3}
dir=${1:-${TMPDIR:-/tmp}}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

command -v sha256sum >/dev/null || { echo "sha256sum not found" >&2; exit 1; }
command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
bytes=$(numfmt --from=iec "$size_spec")
mkdir -p "$dir"
avail=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') * 1024 ))
if (( avail < bytes + (256 << 20) )); then
	echo "not enough space in $dir: need $bytes bytes, $avail available" >&2
	exit 1
fi

work=$(mktemp -d "$dir/hashbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
data=$work/data.bin
bin=$work/hashbench

echo "building the Go benchmark program"
(cd "$root" && go build -o "$bin" ./test/bench/hash)

echo "writing $bytes bytes of random data to $data"
if command -v openssl >/dev/null; then
	# AES-CTR keystream: random-looking, much faster than /dev/urandom.
	# openssl dies of SIGPIPE when head has enough: not a failure.
	{ openssl enc -aes-128-ctr -nosalt -pass "pass:$RANDOM$RANDOM$$" </dev/zero 2>/dev/null || true; } |
		head -c "$bytes" >"$data"
else
	head -c "$bytes" /dev/urandom >"$data"
fi
actual=$(stat -c %s "$data")
[[ $actual == "$bytes" ]] || { echo "data file has $actual bytes, want $bytes" >&2; exit 1; }
mem_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
if (( mem_kib > 0 && bytes / 1024 > mem_kib * 8 / 10 )); then
	echo "warning: the file is close to or larger than available memory; runs may hit the disk" >&2
fi

echo "warming the page cache"
cat "$data" >/dev/null

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

have_time=0
[[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1 && have_time=1

# timed OUTFILE CMD...: runs CMD with stdout to OUTFILE; sets wall_ns, and
# cpu_ms (user+sys) and rss_kib when /usr/bin/time is available.
timed() {
	local out=$1
	shift
	local t0 t1
	t0=$(now_ns)
	if ((have_time)); then
		/usr/bin/time -v -o "$work/time.txt" "$@" >"$out"
	else
		"$@" >"$out"
	fi
	t1=$(now_ns)
	wall_ns=$((t1 - t0))
	cpu_ms="" rss_kib=""
	if ((have_time)); then
		cpu_ms=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%d", s * 1000}' "$work/time.txt")
		rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
	fi
}
secs() { awk -v n="$1" 'BEGIN {printf "%.2f", n / 1e9}'; }

s256_wall=() s256_cpu=() go_wall=() go_cpu=() go256_wall=() rss=() hwm=()
for ((i = 1; i <= runs; i++)); do
	timed "$work/s256.out" sha256sum "$data"
	ref=$(cut -d' ' -f1 "$work/s256.out")
	s256_wall+=("$wall_ns") s256_cpu+=("$cpu_ms")

	timed "$work/go.out" "$bin" -file "$data" -algos sha256,sha512
	got=$(sed -n 's/^sha256=//p' "$work/go.out")
	[[ $got == "$ref" ]] || { echo "sha256 mismatch: go $got, sha256sum $ref" >&2; exit 1; }
	go_wall+=("$wall_ns") go_cpu+=("$cpu_ms") rss+=("$rss_kib")
	hwm+=("$(sed -n 's/^vmhwm_kib=//p' "$work/go.out")")

	timed "$work/go256.out" "$bin" -file "$data" -algos sha256
	go256_wall+=("$wall_ns")
	echo "run $i: sha256sum $(secs "${s256_wall[-1]}")s, go sha256+sha512 $(secs "${go_wall[-1]}")s, go sha256 only $(secs "${go256_wall[-1]}")s (wall)"
done

med() { printf '%s\n' "$@" | median; }
m_s256=$(med "${s256_wall[@]}")
m_go=$(med "${go_wall[@]}")
m_go256=$(med "${go256_wall[@]}")
mbps() { awk -v b="$bytes" -v ns="$1" 'BEGIN {printf "%.1f", b / 1e6 / (ns / 1e9)}'; }

echo
echo "file:         $bytes bytes ($size_spec) of random data, page cache warm, $runs runs each, medians"
echo "cpu:          $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null), $(nproc) cores, sha_ni: $(grep -qw sha_ni /proc/cpuinfo 2>/dev/null && echo yes || echo no)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall-clock figures)"
echo "sha256sum:                  $(mbps "$m_s256") MB/s"
echo "go sha256+sha512 one pass:  $(mbps "$m_go") MB/s"
echo "go sha256 only:             $(mbps "$m_go256") MB/s"
echo "ratio (go sha256+sha512 / sha256sum): $(awk -v a="$m_s256" -v b="$m_go" 'BEGIN {printf "%.2f", a / b}')x"
if ((have_time)); then
	echo "cpu time (user+sys): sha256sum $(awk -v m="$(med "${s256_cpu[@]}")" 'BEGIN {printf "%.2f", m / 1000}')s, go sha256+sha512 $(awk -v m="$(med "${go_cpu[@]}")" 'BEGIN {printf "%.2f", m / 1000}')s"
	echo "go peak RSS (/usr/bin/time -v): max $(printf '%s\n' "${rss[@]}" | sort -n | tail -1) KiB"
fi
if [[ -n ${hwm[0]:-} ]]; then
	echo "go peak RSS (VmHWM, self):      max $(printf '%s\n' "${hwm[@]}" | sort -n | tail -1) KiB"
fi
