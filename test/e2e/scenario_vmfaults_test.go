//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The faults of issue #14, run as subtests of TestScenarioFaults (in
// parallel with its other builds): a build killed with SIGKILL, a full
// output filesystem, QEMU killed, four builds of one image name. Each
// measures its time to error and checks the processes and files left.

// faultBound is how long a build may take from a fault to Packer's exit:
// the watcher fails the step at once; the rest is Packer's own cleanup on
// a loaded host.
const faultBound = 90 * time.Second

// buildQEMU returns the pid and the temporary directory (from its QMP
// socket's path) of the only QEMU whose command line names dir.
func buildQEMU(t *testing.T, dir string) (int, string) {
	t.Helper()
	procs := qemuProcsUnder(dir)
	if len(procs) != 1 {
		t.Fatalf("want one QEMU of the build under %s, found %d:\n%s", dir, len(procs), strings.Join(procs, "\n"))
	}
	pid, err := strconv.Atoi(strings.Fields(procs[0])[0])
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`unix:(\S+)/qmp\.sock`).FindStringSubmatch(procs[0])
	if m == nil {
		t.Fatalf("no QMP socket in QEMU's command line: %s", procs[0])
	}
	return pid, strings.ReplaceAll(m[1], ",,", ",")
}

// waitExit waits up to bound for Packer's exit and returns it with the time
// it took since from.
func waitExit(t *testing.T, p *packerProc, from time.Time, bound time.Duration) (*packerRun, time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(bound):
		t.Errorf("packer still running %s after the fault", bound)
	}
	took := time.Since(from)
	return p.Wait(), took
}

// killPacker sends SIGKILL to the Packer processes of p (Packer runs as two,
// a monitor and the worker), not to its plugins: what `pkill -9 packer`, the
// OOM killer or a runner that kills only what it started do.
func killPacker(t *testing.T, p *packerProc, dir string) {
	t.Helper()
	n := 0
	for _, l := range leftovers(p.Pgid(), dir) {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == suite.packer && f[2] == "build" {
			pid, _ := strconv.Atoi(f[0])
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no packer process to kill")
	}
}

// waitGone waits up to bound for pid to end and returns how long it took.
func waitGone(t *testing.T, pid int, from time.Time, bound time.Duration, what string) time.Duration {
	t.Helper()
	for !procGone(pid) {
		if time.Since(from) > bound {
			t.Fatalf("%s (pid %d) still runs %s after the kill", what, pid, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(from)
}

// faultKilled: builds killed with SIGKILL. (1) Packer alone is killed while a
// provisioner runs: the plugin notices, stops QEMU and removes the build's
// files itself. (2) A build's whole process group (Packer and its plugins,
// as a CI runner cancelling a job does) is killed once QEMU runs: QEMU, in a
// group of its own, dies with the plugin; the build disk and temporary
// directory stay. (3) The next build into the directory removes them.
func faultKilled(t *testing.T, dir string, vars map[string]string) {
	tm := newTimings(t)
	out := vars["output_directory"]
	vars["vm_name"] = "killed.qcow2"
	disk := filepath.Join(out, ".killed.qcow2.building.qcow2")

	// (1) Packer killed during provisioning.
	start := time.Now()
	p := startPacker(t, dir, append([]string{"build"}, buildArgs(vars, "killed.pkr.hcl")...)...)
	if _, err := p.WaitOutput(`e2e-killed-provisioning-42`, 30*time.Minute); err != nil {
		t.Fatalf("waiting for the provisioner to start: %v", err)
	}
	tm.since("until provisioning", start)
	qemu, tmp := buildQEMU(t, dir)
	for _, f := range []string{disk, filepath.Join(tmp, "owner.lock")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("while provisioning: %v", err)
		}
	}
	killed := time.Now()
	killPacker(t, p, dir)
	took := waitGone(t, qemu, killed, 30*time.Second, "QEMU")
	for _, f := range []string{tmp, out} {
		for _, err := os.Stat(f); !os.IsNotExist(err); _, err = os.Stat(f) {
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("%s is still there 30s after Packer was killed (%v)", f, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tm.since("Packer SIGKILL to all cleaned", killed)
	t.Logf("Packer killed: QEMU gone after %s, the build's files after %s", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	p.Wait() // nothing of the group or naming dir may run

	// (2) The whole process group killed once QEMU runs (seconds in).
	p = startPacker(t, dir, append([]string{"build"}, buildArgs(vars, "killed.pkr.hcl")...)...)
	if _, err := p.WaitOutput(`Serial console log: `, 10*time.Minute); err != nil {
		t.Fatalf("waiting for QEMU: %v", err)
	}
	qemu, tmp = buildQEMU(t, dir)
	killed = time.Now()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took = waitGone(t, qemu, killed, 10*time.Second, "QEMU")
	tm.since("group SIGKILL to QEMU gone", killed)
	t.Logf("process group killed: QEMU gone after %s", took.Round(time.Millisecond))
	p.Wait()
	// What only the next build can clean: the killed build's work files.
	for _, f := range []string{disk, tmp} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the killed build left no %s to sweep: %v", f, err)
		}
	}

	// (3) The next build, of another image into the same directory, sweeps
	// and then fails at once (disk_size smaller than the source image).
	vars["vm_name"] = "second.qcow2"
	vars["disk_size"] = "1M"
	start = time.Now()
	r := buildPacker(t, dir, buildArgs(vars, "killed.pkr.hcl")...)
	tm.since("sweeping build", start)
	r.mustFail(t,
		`Removed the temporary directory left by a build that was killed or aborted: `+regexp.QuoteMeta(tmp),
		`Removed the work files left by a build that was killed or aborted, in `+regexp.QuoteMeta(out)+`: \.killed\.qcow2\.building\.qcow2`,
		`disk_size 1M .* is smaller than the source`,
	)
	for _, f := range []string{disk, tmp} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the sweep (%v)", f, err)
		}
	}
	// The killed build made the directory; the second did not, so it stays, empty.
	if ents, err := os.ReadDir(out); err != nil || len(ents) > 0 {
		t.Errorf("output directory after the sweep: %v %v", ents, err)
	}
}

// faultDiskFull: output_directory on a 512 MiB tmpfs, filled by the test
// while the guest writes; QEMU pauses the guest (ENOSPC) and the build fails
// at once naming the filesystem, leaving nothing.
func faultDiskFull(t *testing.T, dir string, vars map[string]string) {
	tm := newTimings(t)
	fsDir := filepath.Join(dir, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", fsDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (root is needed): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", fsDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", fsDir, err, out)
			_ = exec.Command("umount", "-l", fsDir).Run()
		}
	})
	out := filepath.Join(fsDir, "output")
	vars["output_directory"] = out
	start := time.Now()
	p := startPacker(t, dir, append([]string{"build"}, buildArgs(vars, "diskfull.pkr.hcl")...)...)
	if _, err := p.WaitOutput(`e2e-full-provisioning-42`, 30*time.Minute); err != nil {
		t.Fatalf("waiting for the provisioner to start: %v", err)
	}
	tm.since("until provisioning", start)
	_, tmp := buildQEMU(t, dir)

	// Fill the filesystem in 4 MiB steps until it refuses one (the guest
	// writes meanwhile; what it cannot take stays free).
	filled := time.Now()
	f, err := os.Create(filepath.Join(fsDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for ; ; size += 4 << 20 {
		if err := syscall.Fallocate(int(f.Fd()), 0, size, 4<<20); err != nil {
			break
		}
	}
	f.Close()
	t.Logf("tmpfs filled with %d MiB in %s", size>>20, time.Since(filled).Round(time.Millisecond))

	r, took := waitExit(t, p, filled, faultBound)
	tm.since("filesystem full to packer exit", filled)
	t.Logf("packer exited %s after the filesystem filled up", took.Round(100*time.Millisecond))
	r.mustFail(t, `the filesystem holding `+regexp.QuoteMeta(out)+` is full \([0-9.]+ [KMG]iB free\): QEMU paused the guest on a write error during provisioning`)
	if strings.Contains(r.Output, "e2e-full-dd-returned") {
		t.Error("the guest's write finished: the disk never filled up")
	}
	_ = os.Remove(filepath.Join(fsDir, "filler"))
	checkNothingLeft(t, dir, out, "full.qcow2")
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the build's temporary directory %s is left (%v)", tmp, err)
	}
}

// faultParallelQEMUKilled: four builds from one source block without
// vm_name into one directory. One writes packer-node; the three others fail
// at once naming the conflict and leave its build disk alone. Then the
// remaining build's QEMU is killed with SIGKILL while its provisioner
// runs: the build fails saying so, and leaves nothing.
func faultParallelQEMUKilled(t *testing.T, dir string, vars map[string]string) {
	tm := newTimings(t)
	out := vars["output_directory"]
	start := time.Now()
	p := startPacker(t, dir, append([]string{"build"}, buildArgs(vars, "parallel.pkr.hcl")...)...)
	if _, err := p.WaitOutput(`e2e-parallel-provisioning-42`, 30*time.Minute); err != nil {
		t.Fatalf("waiting for the provisioner to start: %v", err)
	}
	tm.since("until provisioning", start)
	b, _ := os.ReadFile(filepath.Join(dir, "packer.out"))
	conflict := regexp.MustCompile(`Build 'cloudimg-kvm\.[abcd]' errored after [^:]*: another build is writing ` + regexp.QuoteMeta(filepath.Join(out, "packer-node")) + ` right now: give each source its own vm_name`)
	if n := len(conflict.FindAll(b, -1)); n != 3 {
		t.Errorf("want 3 builds refused with the name conflict, got %d", n)
	}
	disk := filepath.Join(out, ".packer-node.building.qcow2")
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("the remaining build's disk: %v", err)
	}
	qemu, tmp := buildQEMU(t, dir)

	killed := time.Now()
	if err := syscall.Kill(qemu, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r, took := waitExit(t, p, killed, faultBound)
	tm.since("QEMU SIGKILL to packer exit", killed)
	t.Logf("packer exited %s after QEMU's SIGKILL", took.Round(100*time.Millisecond))
	r.mustFail(t, `errored after [^:]*: QEMU exited with signal 9 \(killed\) during provisioning`)
	checkNothingLeft(t, dir, out, "packer-node")
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the build's temporary directory %s is left (%v)", tmp, err)
	}
}
