//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// arm64Env = 0 leaves TestScenarioARM64 out.
const arm64Env = "CLOUDIMG_E2E_ARM64"

// This file is not named scenario_arm64_test.go: the _arm64 suffix would
// make Go build it on arm64 hosts only.

// TestScenarioARM64 builds an arm64 image from the debian-13-arm64 cell with
// arch = "arm64" (emulated on an x86 host: TCG, the virt machine, AAVMF),
// with a shell provisioner, the reset and the metadata post-processor with a
// repository; it checks the metadata (image.arch, firmware uefi), the
// repository and the UEFI variables beside the image, then boots the output
// as a new arm64 VM with a new seed and judges it like the amd64 scenarios:
// a cloud-init first boot, the build user gone, an aarch64 kernel under UEFI
// with its console on the PL011.
//
// It is part of `make test`; CLOUDIMG_E2E_ARM64=0 leaves it out (quick
// local runs: a cold debian-13-arm64 image takes 18-25 min to build on an x86
// host, the scenario itself about 2.5 min; figures in the README).
func TestScenarioARM64(t *testing.T) {
	if os.Getenv(arm64Env) == "0" {
		t.Skipf("%s=0", arm64Env)
	}
	tm := newTimings(t)
	c := debian13ARM64
	img := testImage(t, c)
	srcSum := testImageSHA256(t, c)
	dir := copyScenario(t, "arm64", testDir(t))
	repo := filepath.Join(dir, "repository")
	imageID := "arm64-" + randHex(4)
	vars := map[string]string{
		"iso_url":      img,
		"iso_checksum": "sha256:" + srcSum,
		"repository":   repo,
		"image_id":     imageID,
	}
	start := time.Now()
	buildPacker(t, dir, buildArgs(vars, "build.pkr.hcl")...).mustSucceed(t)
	tm.since("build", start)

	rel := imageID + "/arm64.qcow2"
	output := filepath.Join(repo, rel)
	meta := checkMetadata(t, output, srcSum)
	if meta.Image.Arch != "arm64" || meta.Image.Firmware != "uefi" {
		t.Errorf("metadata: image.arch %q, image.firmware %q; want arm64 and uefi", meta.Image.Arch, meta.Image.Firmware)
	}
	if meta.Guest != nil && meta.Guest.OSRelease["VERSION_ID"] != "13" {
		t.Errorf("metadata: guest.os_release.VERSION_ID %q, want 13", meta.Guest.OSRelease["VERSION_ID"])
	}
	if idx := checkRepository(t, repo, rel); idx.Latest["arm64"] != rel {
		t.Errorf("index.json: latest[arm64] = %q, want %q", idx.Latest["arm64"], rel)
	}
	if st, err := os.Stat(output + ".efivars.fd"); err != nil || st.Size() != 64<<20 {
		t.Errorf("the UEFI variables beside the image: want AAVMF's 64 MiB store: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}

	start = time.Now()
	bootOutputs(t, []vmOptions{{User: "carol", Arch: "arm64"}},
		func(int) string { return output },
		func(t *testing.T, _ int, v *vm) {
			checkFirstBoot(t, v)
			checkBuildUserGone(t, v)
			machineID(t, v)
			build := v.MustRead("cat /etc/cloudimg-e2e-build")
			for _, want := range []string{"machine=aarch64", "firmware=uefi", "console=ttyAMA0"} {
				if !strings.Contains(build, want) {
					t.Errorf("the build guest recorded %q; want %s", build, want)
				}
			}
			if got := strings.TrimSpace(v.MustRead("uname -m")); got != "aarch64" {
				t.Errorf("the output booted a %q kernel, want aarch64", got)
			}
			if _, code, err := v.Run("test -d /sys/firmware/efi"); err != nil || code != 0 {
				t.Errorf("the output did not boot under UEFI (no /sys/firmware/efi): exit %d, %v", code, err)
			}
		})
	tm.since("boot", start)
}
