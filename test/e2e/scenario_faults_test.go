//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScenarioFaults checks how builds fail: they must say why, and leave
// neither a QEMU process, nor an image under the final name, nor the build
// disk behind.
//
// A template with a wrong option type or without iso_checksum is covered
// by TestValidate (wrong-type.pkr.hcl, no-checksum.pkr.hcl) and not
// repeated here.
func TestScenarioFaults(t *testing.T) {
	img := testImage(t, debian12)
	srcSum := testImageSHA256(t, debian12)

	// setup copies the scenario into the subtest's directory and returns
	// it with the variables of its templates.
	setup := func(t *testing.T) (string, map[string]string) {
		dir := copyScenario(t, "faults", testDir(t))
		return dir, map[string]string{
			"iso_url":          img,
			"iso_checksum":     "sha256:" + srcSum,
			"output_directory": filepath.Join(dir, "output"),
		}
	}

	// A user runcmd fails during the build boot: cloud-init ends in error,
	// the build fails with cloud-init's own account of it.
	t.Run("runcmd_fails", func(t *testing.T) {
		t.Parallel()
		tm := newTimings(t)
		dir, vars := setup(t)
		start := time.Now()
		r := buildPacker(t, dir, buildArgs(vars, "runcmd-fails.pkr.hcl")...)
		tm.since("failing build", start)
		r.mustFail(t,
			`cloud-init failed`,
			`scripts-user|runcmd`, // cloud-init status --long names the failed module
			`e2e-runcmd-boom`,     // the failing command's stderr, from cloud-init-output.log
		)
		if strings.Contains(r.Output, "this provisioner must never run") {
			t.Errorf("a provisioner ran although cloud-init had failed")
		}
		checkNothingLeft(t, dir, vars["output_directory"], "fault.qcow2")
	})

	// The faults of issue #14, in scenario_vmfaults_test.go: SIGKILL of
	// Packer and its plugins then a sweeping build, a full output
	// filesystem, four builds of one image name with QEMU killed.
	vmFault := func(name string, fn func(*testing.T, string, map[string]string)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := copyScenario(t, "vmfaults", testDir(t))
			fn(t, dir, map[string]string{
				"iso_url":          img,
				"iso_checksum":     "sha256:" + srcSum,
				"output_directory": filepath.Join(dir, "output"),
			})
		})
	}
	vmFault("killed", faultKilled)
	vmFault("disk_full", faultDiskFull)
	vmFault("parallel_qemu_killed", faultParallelQEMUKilled)

	// Ctrl-C while a provisioner runs: Packer stops within a bounded time
	// and cleans up.
	t.Run("interrupt", func(t *testing.T) {
		t.Parallel()
		tm := newTimings(t)
		dir, vars := setup(t)
		start := time.Now()
		p := startPacker(t, dir, append([]string{"build"}, buildArgs(vars, "interrupt.pkr.hcl")...)...)
		if _, err := p.WaitOutput(`e2e-provisioning-started-42`, 30*time.Minute); err != nil {
			t.Fatalf("waiting for the provisioner to start: %v", err)
		}
		tm.since("until provisioning", start)
		// The build disk exists now; it must be gone afterwards.
		disk := filepath.Join(vars["output_directory"], ".fault.qcow2.building.qcow2")
		if _, err := os.Stat(disk); err != nil {
			t.Errorf("while provisioning: build disk: %v", err)
		}

		interrupted := time.Now()
		if err := p.Signal(syscall.SIGINT); err != nil {
			t.Fatalf("SIGINT to packer's process group: %v", err)
		}
		const bound = 2 * time.Minute
		select {
		case <-p.Done():
		case <-time.After(bound):
			t.Errorf("packer still running %s after SIGINT", bound)
		}
		r := p.Wait() // after the bound, the test's cleanup stops it harder
		tm.since("SIGINT to exit", interrupted)
		t.Logf("packer exited %d, %s after SIGINT", r.ExitCode, time.Since(interrupted).Round(100*time.Millisecond))
		if r.ExitCode == 0 {
			t.Errorf("packer exited 0 after SIGINT")
		}
		if strings.Contains(r.Output, "Phases:") {
			t.Errorf("the build went on after SIGINT")
		}
		checkNothingLeft(t, dir, vars["output_directory"], "fault.qcow2")
	})
}

// checkNothingLeft checks what a failed or cancelled build must leave: no
// QEMU mentioning dir, no image (nor a temporary file of the builder) in the
// output directory, which the build created and must remove again.
func checkNothingLeft(t *testing.T, dir, outputDir, vmName string) {
	t.Helper()
	// Packer has exited, so its cleanup has run: a QEMU still there after a
	// short grace (for an exit in progress) has leaked. Kill it, by pid.
	deadline := time.Now().Add(15 * time.Second)
	for left := qemuProcsUnder(dir); len(left) > 0; left = qemuProcsUnder(dir) {
		if time.Now().After(deadline) {
			t.Errorf("QEMU processes of the build are still running after packer exited (killed now):\n%s", strings.Join(left, "\n"))
			for _, l := range left {
				if pid, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := os.Lstat(filepath.Join(outputDir, vmName)); err == nil {
		t.Errorf("an image exists under the final name %s", filepath.Join(outputDir, vmName))
	}
	ents, err := os.ReadDir(outputDir)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		t.Error(err)
	default:
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if len(names) > 0 {
			t.Errorf("the failed build left files in %s: %q", outputDir, names)
		} else {
			t.Errorf("the failed build left the output directory %s it created (empty)", outputDir)
		}
	}
}
