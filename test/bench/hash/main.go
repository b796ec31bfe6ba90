// Command hash hashes one file with imagemeta.HashFile and prints the time,
// the throughput and the process's peak resident set size. It is driven by
// run.sh, which compares it with sha256sum on the same file.
//
//	go run ./test/bench/hash -file FILE [-algos sha256,sha512]
//
// Output is one "key=value" per line: bytes, seconds, mb_per_s (10^6
// bytes/s), one line per digest, and vmhwm_kib when /proc/self/status exists.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

func main() {
	file := flag.String("file", "", "file to hash (required)")
	algos := flag.String("algos", "sha256,sha512", "comma-separated digests")
	flag.Parse()
	if *file == "" {
		fmt.Fprintln(os.Stderr, "usage: hash -file FILE [-algos sha256,sha512]")
		os.Exit(2)
	}
	start := time.Now()
	sums, size, err := imagemeta.HashFile(*file, strings.Split(*algos, ","))
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("bytes=%d\nseconds=%.3f\nmb_per_s=%.1f\n", size, elapsed.Seconds(), float64(size)/1e6/elapsed.Seconds())
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("%s=%s\n", n, sums[n])
	}
	if hwm := vmHWM(); hwm != "" {
		fmt.Printf("vmhwm_kib=%s\n", hwm)
	}
}

// vmHWM returns the peak resident set size in KiB from /proc/self/status,
// or "" where that file does not exist.
func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSuffix(strings.TrimSpace(v), " kB")
		}
	}
	return ""
}
