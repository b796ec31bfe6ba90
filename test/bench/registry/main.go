// Command registry is `make bench`'s registry part: it pushes a disk image
// to a registry, or pulls it back, with exactly the calls the plugin makes
// (internal/ociregistry: Push as cloudimg-oci does; Describe and Pull into a
// file as cloudimg-kvm's `iso_url = "oci://…"` step does), and prints its
// wall time and this process's peak resident set size, which is what the
// plugin process that pushes or pulls would show.
//
//	registry -mode push -ref 127.0.0.1:5000/bench/nodes -file image.qcow2 [-layout artifact]
//	registry -mode pull -ref 127.0.0.1:5000/bench/nodes:tag -file out.qcow2
//
// Output: `seconds=<wall time> peak_rss_kib=<VmHWM of /proc/self/status>`
// (Linux), plus `ref=<oci://…@sha256:…>` after a push.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
)

func main() {
	mode := flag.String("mode", "push", "push or pull")
	refFlag := flag.String("ref", "", "host:port/repository (push) or …:tag / …@digest (pull)")
	file := flag.String("file", "", "the disk to push, or where to write the pulled disk")
	layout := flag.String("layout", ociregistry.LayoutArtifact, "containerdisk or artifact")
	sha := flag.String("sha256", "", "the disk's sha256 when known (as its metadata gives it)")
	plain := flag.Bool("plain-http", true, "talk plain HTTP")
	flag.Parse()
	if err := run(*mode, *refFlag, *file, *layout, *sha, *plain); err != nil {
		fmt.Fprintln(os.Stderr, "registry bench:", err)
		os.Exit(1)
	}
}

func run(mode, refStr, file, layout, sha string, plain bool) error {
	ref, err := ociregistry.ParseReference(refStr)
	if err != nil {
		return err
	}
	c, err := ociregistry.Open(ref, ociregistry.Options{PlainHTTP: plain})
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	var extra string
	switch mode {
	case "push":
		st, err := os.Stat(file)
		if err != nil {
			return err
		}
		res, err := c.Push(ctx, ociregistry.Push{Layout: layout, Tags: []string{"bench"}, Image: ociregistry.Image{
			Path: file, SHA256: sha, Name: "bench", Arch: "amd64", Format: "qcow2", Created: st.ModTime().UTC().Truncate(time.Second),
		}})
		if err != nil {
			return err
		}
		extra = " ref=" + res.Ref.URL()
	case "pull":
		e, err := c.Describe(ctx, ref.Reference, "amd64")
		if err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.part")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := c.Pull(ctx, e, f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), file); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-mode %q: push or pull", mode)
	}
	fmt.Printf("seconds=%.2f peak_rss_kib=%s%s\n", time.Since(start).Seconds(), vmHWM(), extra)
	return nil
}

// vmHWM is the peak resident set size of this process in KiB, from
// /proc/self/status (proc(5)), or "?" elsewhere.
func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strings.TrimSuffix(strings.TrimSpace(v), " kB")
		}
	}
	return "?"
}
