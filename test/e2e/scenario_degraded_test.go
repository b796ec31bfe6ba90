//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestScenarioDegraded builds on cloud-init 25.1 (Debian 13) with a
// deprecated key in the user-data and cloud_init_degraded = "fail":
// `cloud-init status` exits 2 ("degraded"), and the build must stop there —
// no provisioner runs — with cloud-init's own message on Packer's error
// line, and leave neither QEMU nor an image behind. The user-data is given
// as a stock-builder cd_content seed: what the builder drops from it
// (ssh_pwauth) is said exactly once in the log. (The "warn" default is
// checked by the basic scenario on Debian 13.)
func TestScenarioDegraded(t *testing.T) {
	tm := newTimings(t)
	img := testImage(t, debian13)
	srcSum := testImageSHA256(t, debian13)
	dir := copyScenario(t, "degraded", testDir(t))
	vars := map[string]string{
		"iso_url":          img,
		"iso_checksum":     "sha256:" + srcSum,
		"output_directory": filepath.Join(dir, "output"),
	}

	start := time.Now()
	r := buildPacker(t, dir, buildArgs(vars, "build.pkr.hcl")...)
	tm.since("failing build", start)

	// The first line of the error Packer prints names the cause.
	errorLine := regexp.MustCompile(`(?m)^Build '[^']*' errored after [^:]*: (cloud-init finished degraded: .*)$`)
	r.mustFail(t, errorLine.String(), `\(fatal: cloud_init_degraded = "fail"\)`)
	m := errorLine.FindStringSubmatch(r.Output)
	if m == nil {
		return // mustFail has reported it
	}
	cause := m[1]
	t.Logf("error line: %s", m[0])
	if !strings.Contains(cause, "DEPRECATED: Deprecated cloud-config provided: apt_update") {
		t.Errorf("the error line does not name the deprecated key as cloud-init reports it: %q", cause)
	}
	// It is cloud-init's own text: the message that `cloud-init status
	// --long` (in the diagnostics below the error line) lists as DEPRECATED.
	long := regexp.MustCompile(`(?m)^DEPRECATED:\s*\n\s*- (.*apt_update.*)$`).FindStringSubmatch(r.Output)
	switch {
	case long == nil:
		t.Errorf("no DEPRECATED message about apt_update in the cloud-init status --long diagnostics")
	case !strings.Contains(cause, "DEPRECATED: "+strings.TrimSpace(long[1])):
		t.Errorf("the error line does not carry cloud-init's message\n error line: %q\n status --long: %q", cause, long[1])
	case strings.Count(cause, strings.TrimSpace(long[1])) != 1:
		// cloud-init 25.1 lists it once per stage; once is enough.
		t.Errorf("the error line repeats cloud-init's message: %q", cause)
	}

	// The note on the dropped legacy key is printed once (it was printed
	// twice when the seed's input was derived in Prepare and again in the step).
	dropped := regexp.MustCompile(`(?m)Warning: cd_content\["user-data"\]: dropped ssh_pwauth\b`)
	if n := len(dropped.FindAllString(r.Output, -1)); n != 1 {
		t.Errorf("the note on the dropped ssh_pwauth is printed %d times, want once", n)
	}

	// The build stopped at cloud-init: no provisioner ran.
	if strings.Contains(r.Output, "e2e-degraded-provisioner-ran-42") || strings.Contains(r.Output, "Provisioning with") {
		t.Errorf("a provisioner ran although cloud-init was degraded and cloud_init_degraded = \"fail\"")
	}
	checkNothingLeft(t, dir, vars["output_directory"], "degraded.qcow2")
}
