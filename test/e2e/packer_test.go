//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// packerRun is the result of one Packer invocation.
type packerRun struct {
	Dir      string
	Args     []string
	Output   string // stdout and stderr, interleaved as in <Dir>/packer.out
	ExitCode int    // -1 when Packer was killed by a signal or did not start
	Err      error  // why Packer did not run to its own end (start failure, timeout), else nil
	TimedOut bool
	Duration time.Duration
}

// Succeeded reports whether Packer ran to its end and exited 0.
func (r *packerRun) Succeeded() bool { return r.Err == nil && r.ExitCode == 0 }

// mustSucceed fails the test now unless Packer exited 0.
func (r *packerRun) mustSucceed(t testing.TB) {
	t.Helper()
	if !r.Succeeded() {
		t.Fatalf("packer %s: exit %d, err %v after %s (output in %s); its last lines:\n%s", strings.Join(r.Args, " "), r.ExitCode, r.Err, r.Duration.Round(time.Second), filepath.Join(r.Dir, "packer.out"), tailLines(r.Output, 12))
	}
}

// mustFail fails the test now unless Packer ran to its end with a non-zero
// exit status and its output matches every regular expression given.
func (r *packerRun) mustFail(t testing.TB, patterns ...string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("packer %s did not run to its end: %v", strings.Join(r.Args, " "), r.Err)
	}
	if r.ExitCode == 0 {
		t.Fatalf("packer %s: exit 0, want a failure; output:\n%s", strings.Join(r.Args, " "), r.Output)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(r.Output) {
			t.Errorf("packer %s: output does not match %q; output:\n%s", strings.Join(r.Args, " "), p, r.Output)
		}
	}
}

// defaultPackerTimeout bounds one Packer run unless the test's own deadline
// is nearer.
const defaultPackerTimeout = 45 * time.Minute

// packerProc is a Packer process started in the background, in its own
// process group (as a shell job is), so that Signal reaches Packer, its
// plugins and whatever they started, like a Ctrl-C in a terminal.
type packerProc struct {
	t       testing.TB
	cmd     *exec.Cmd
	dir     string
	args    []string
	outPath string
	start   time.Time
	done    chan struct{} // closed when Packer has exited
	run     *packerRun
	once    sync.Once

	mu       sync.Mutex
	timedOut bool
}

// runPacker runs `packer args...` in dir and waits for it. See startPacker.
func runPacker(t testing.TB, dir string, args ...string) *packerRun {
	t.Helper()
	return startPacker(t, dir, args...).Wait()
}

// startPacker starts `packer args...` in dir with the suite's environment
// plus PACKER_LOG=1 and PACKER_LOG_PATH=<dir>/packer.log; stdout and stderr go
// to <dir>/packer.out (earlier ones in dir are kept as packer.N.out/.log).
// It gets defaultPackerTimeout (or less, before the test's deadline), after
// which it is interrupted and then killed. If the test fails, the tails of
// packer.out, packer.log and the serial logs under dir are logged.
func startPacker(t testing.TB, dir string, args ...string) *packerProc {
	t.Helper()
	return startPackerEnv(t, dir, nil, args...)
}

// startPackerEnv is startPacker with extra environment variables ("K=V"),
// which override the suite's (the last of a name wins): how a test hands
// Packer a registry's DOCKER_CONFIG, or a secret (PKR_VAR_…,
// COSIGN_PASSWORD) that must not be on its command line, which Packer logs.
func startPackerEnv(t testing.TB, dir string, env []string, args ...string) *packerProc {
	t.Helper()
	rotatePackerFiles(t, dir)
	outPath := filepath.Join(dir, "packer.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	registerPackerDump(t, dir)

	cmd := exec.Command(suite.packer, args...)
	cmd.Dir = dir
	cmd.Env = append(append(packerEnv(), "PACKER_LOG=1", "PACKER_LOG_PATH="+filepath.Join(dir, "packer.log")), env...)
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group, so that Signal reaches Packer and its children like
	// a Ctrl-C; SIGTERM (which Packer handles like Ctrl-C) if the test
	// binary dies, since a group of its own no longer dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	p := &packerProc{t: t, cmd: cmd, dir: dir, args: args, outPath: outPath, done: make(chan struct{})}
	t.Logf("packer %s (in %s)", strings.Join(args, " "), dir)
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		p.run = &packerRun{Dir: dir, Args: args, ExitCode: -1, Err: fmt.Errorf("starting packer: %w", err)}
		close(p.done)
		return p
	}

	timeout := defaultPackerTimeout
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			if left := time.Until(dl) - 3*time.Minute; left < timeout {
				timeout = max(left, time.Minute)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		err := cmd.Wait()
		cancel()
		out.Close()
		p.finish(err)
		close(p.done)
	}()
	go func() {
		<-ctx.Done()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return
		}
		p.mu.Lock()
		p.timedOut = true
		p.mu.Unlock()
		t.Logf("packer %s: timeout after %s; interrupting it", strings.Join(args, " "), timeout)
		p.stopGroup(2 * time.Minute)
	}()
	// Whatever happens to the test, Packer and its children do not outlive it.
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			t.Logf("packer %s still running at the end of the test; interrupting it", strings.Join(args, " "))
			p.stopGroup(time.Minute)
			<-p.done
		}
	})
	return p
}

func (p *packerProc) finish(err error) {
	r := &packerRun{Dir: p.dir, Args: p.args, Duration: time.Since(p.start)}
	b, _ := os.ReadFile(p.outPath)
	r.Output = string(b)
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode() // -1 when killed by a signal
	default:
		r.ExitCode = -1
		r.Err = err
	}
	p.mu.Lock()
	if p.timedOut {
		r.TimedOut = true
		r.Err = fmt.Errorf("packer timed out after %s", r.Duration.Round(time.Second))
	}
	p.mu.Unlock()
	p.run = r
}

// stopGroup sends SIGINT to Packer's process group and SIGKILL after grace.
func (p *packerProc) stopGroup(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.t.Logf("packer did not stop within %s of SIGINT; killing its process group", grace)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// Signal sends sig to Packer's whole process group (Packer, its plugins and
// what they started), as a terminal does on Ctrl-C.
func (p *packerProc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// SignalPacker sends sig to the Packer process only.
func (p *packerProc) SignalPacker(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Pgid is Packer's process group id (its pid).
func (p *packerProc) Pgid() int { return p.cmd.Process.Pid }

// Done is closed when Packer has exited.
func (p *packerProc) Done() <-chan struct{} { return p.done }

// WaitOutput waits until Packer's output so far matches the regular
// expression re and returns the matching text. It fails when Packer exits
// first or timeout passes.
func (p *packerProc) WaitOutput(re string, timeout time.Duration) (string, error) {
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(p.outPath)
		if m := rx.Find(b); m != nil {
			return string(m), nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.outPath)
			if m := rx.Find(b); m != nil {
				return string(m), nil
			}
			return "", fmt.Errorf("packer exited (code %d) before its output matched %q", p.run.ExitCode, re)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("packer output did not match %q within %s", re, timeout)
		}
	}
}

// Wait waits for Packer to exit, then checks that nothing it started is left
// in its process group (a leftover is killed and fails the test).
func (p *packerProc) Wait() *packerRun {
	p.t.Helper()
	<-p.done
	p.once.Do(func() {
		if p.run.ExitCode == -1 && p.run.Err != nil && p.cmd.Process == nil {
			return
		}
		p.t.Logf("packer %s: exit %d after %s", strings.Join(p.args, " "), p.run.ExitCode, p.run.Duration.Round(100*time.Millisecond))
		if left := waitLeftovers(p.cmd.Process.Pid, p.dir, 15*time.Second); len(left) > 0 {
			p.t.Errorf("processes left behind by packer after it exited (killed now):\n%s", strings.Join(left, "\n"))
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			for _, l := range left {
				pid, _, _ := strings.Cut(l, " ")
				if n, err := strconv.Atoi(pid); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
	})
	return p.run
}

// waitLeftovers waits up to timeout for Packer's leftovers to go and returns
// those still there ("pid cmdline" lines): processes in the process group
// pgid, or whose command line names dir (a QEMU started in a group or
// session of its own still names its files there).
func waitLeftovers(pgid int, dir string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		left := leftovers(pgid, dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func leftovers(pgid int, dir string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmdline := strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " ")
		if g, _ := strconv.Atoi(f[2]); g != pgid && (!strings.Contains(cmdline, dir+"/") || isHarnessVM(pid)) {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", pid, cmdline))
	}
	return out
}

// rotatePackerFiles keeps the output and log of an earlier run in dir as
// packer.N.out and packer.N.log.
func rotatePackerFiles(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "packer.out")); err != nil {
		return
	}
	for n := 1; ; n++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("packer.%d.out", n))); err == nil {
			continue
		}
		for _, ext := range []string{"out", "log"} {
			old := filepath.Join(dir, "packer."+ext)
			if _, err := os.Stat(old); err == nil {
				if err := os.Rename(old, filepath.Join(dir, fmt.Sprintf("packer.%d.%s", n, ext))); err != nil {
					t.Fatal(err)
				}
			}
		}
		return
	}
}

var packerDumps struct {
	sync.Mutex
	seen map[string]bool
}

// registerPackerDump logs, once per test and directory, the tails of Packer's
// output and log and of the serial logs under dir if the test fails.
func registerPackerDump(t testing.TB, dir string) {
	key := fmt.Sprintf("%p|%s", t, dir)
	packerDumps.Lock()
	defer packerDumps.Unlock()
	if packerDumps.seen == nil {
		packerDumps.seen = map[string]bool{}
	}
	if packerDumps.seen[key] {
		return
	}
	packerDumps.seen[key] = true
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		section := func(path string, n int) {
			if s := tailFile(path, n); s != "" {
				fmt.Fprintf(&b, "\n----- last %d lines of %s -----\n%s\n", n, path, s)
			}
		}
		// Packer's output last: a report that shows only the end of a
		// failed test's log then still shows Packer's error.
		for _, p := range serialLogs(dir) {
			section(p, 60)
		}
		section(filepath.Join(dir, "packer.log"), 40)
		section(filepath.Join(dir, "packer.out"), 60)
		if b.Len() > 0 {
			t.Logf("test failed; Packer's files in %s:%s", dir, b.String())
		}
	})
}

// serialLogs lists the *.serial.log and serial*.log files under dir.
func serialLogs(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if strings.HasSuffix(name, ".serial.log") || (strings.HasPrefix(name, "serial") && strings.HasSuffix(name, ".log")) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// TestPackerInterrupt checks the harness's Ctrl-C path without any VM: a
// build that blocks until interrupted gets SIGINT on its process group,
// cancels, exits non-zero, and leaves nothing running (Wait checks that).
func TestPackerInterrupt(t *testing.T) {
	dir := testDir(t)
	p := startPacker(t, dir, "build", "-color=false", testdata(t, "interrupt", "interrupt.pkr.hcl"))
	if _, err := p.WaitOutput(`harness-interrupt-ready`, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("packer did not exit within 2 minutes of SIGINT")
	}
	r := p.Wait()
	r.mustFail(t, `(?i)interrupt|cancel`)
}
