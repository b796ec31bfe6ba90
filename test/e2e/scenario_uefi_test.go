//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScenarioUEFI builds with the builder's non-default machine shape:
// firmware = "uefi" (OVMF), disk_interface = "virtio-scsi", use_backing_file
// with disk_size larger than the source, disk_compression (with the default
// disk_compression_type, zstd). It checks what the build guest saw (UEFI, a
// SCSI root disk), that the output is a standalone zstd-compressed qcow2 of
// the new size delivered with its UEFI variables store, and that the output
// boots again as a new UEFI VM does (fresh variables, the disk on virtio-blk
// this time: the bootloader is found on any disk), as a cloud-init first
// boot without the build user.
func TestScenarioUEFI(t *testing.T) {
	tm := newTimings(t)
	img := testImage(t, debian12)
	dir := copyScenario(t, "uefi", testDir(t))
	// A comma in the path: QEMU's option lists need it doubled (disk, UEFI
	// variables).
	out := filepath.Join(dir, "output,uefi")
	vars := map[string]string{
		"iso_url":          img,
		"iso_checksum":     "sha256:" + testImageSHA256(t, debian12),
		"output_directory": out,
	}
	start := time.Now()
	buildPacker(t, dir, buildArgs(vars, "build.pkr.hcl")...).mustSucceed(t)
	tm.since("build", start)

	output := filepath.Join(out, "uefi.qcow2")
	efivars := output + ".efivars.fd"
	if st, err := os.Stat(efivars); err != nil || st.Size() == 0 {
		t.Fatalf("the UEFI variables store beside the image: %v", err)
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", output).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", output, err)
	}
	var qi struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
		Specific    struct {
			Data struct {
				CompressionType string `json:"compression-type"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(info, &qi); err != nil {
		t.Fatal(err)
	}
	if qi.Format != "qcow2" || qi.Backing != "" || qi.VirtualSize != 3<<30 {
		t.Errorf("output: format %q, backing file %q, virtual size %d; want a standalone qcow2 of 3 GiB (disk_size)", qi.Format, qi.Backing, qi.VirtualSize)
	}
	// disk_compression with the default disk_compression_type: zstd, and
	// the clusters really compressed (qemu-img check counts them).
	if ct := qi.Specific.Data.CompressionType; ct != "zstd" {
		t.Errorf("output: qcow2 compression type %q, want zstd (the default disk_compression_type)", ct)
	}
	check, err := exec.Command("qemu-img", "check", "--output=json", output).Output()
	if err != nil {
		t.Fatalf("qemu-img check %s: %v", output, err)
	}
	var qc struct {
		Allocated  int64 `json:"allocated-clusters"`
		Compressed int64 `json:"compressed-clusters"`
	}
	if err := json.Unmarshal(check, &qc); err != nil {
		t.Fatal(err)
	}
	if qc.Compressed == 0 || qc.Compressed < qc.Allocated/2 {
		t.Errorf("output: %d of %d allocated clusters compressed; want most (disk_compression = true)", qc.Compressed, qc.Allocated)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) != 0 {
		t.Errorf("temporary files left in the output directory: %q", left)
	}
	if m := checkMetadata(t, output, testImageSHA256(t, debian12)); m.Image.Firmware != "uefi" {
		t.Errorf("metadata: image.firmware %q, want uefi", m.Image.Firmware)
	}

	start = time.Now()
	bootOutputs(t, []vmOptions{{User: "carol", UEFI: true}},
		func(int) string { return output },
		func(t *testing.T, _ int, v *vm) {
			checkFirstBoot(t, v)
			checkBuildUserGone(t, v)
			build := v.MustRead("cat /etc/cloudimg-e2e-build")
			for _, want := range []string{"firmware=uefi", "root=/dev/sda2", "bus=virtio-scsi"} {
				if !strings.Contains(build, want) {
					t.Errorf("the build guest recorded %q; want %s (firmware and disk_interface in effect)", build, want)
				}
			}
			if _, code, err := v.Run("test -d /sys/firmware/efi"); err != nil || code != 0 {
				t.Errorf("the output did not boot under UEFI (no /sys/firmware/efi): exit %d, %v", code, err)
			}
			// growpart grew the root partition to the 3 GiB disk at the build's
			// first boot; the filesystem is well over the source's 2 GiB.
			size, err := strconv.ParseInt(strings.TrimSpace(v.MustRead("df -B1 --output=size / | tail -n 1")), 10, 64)
			if err != nil || size < 2600<<20 {
				t.Errorf("root filesystem size %d bytes (%v): want it grown towards disk_size 3G", size, err)
			}
		})
	tm.since("boot", start)
}
