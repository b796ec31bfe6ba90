package kvm

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledBuild is a build process killed with SIGKILL (the helper below):
// QEMU (here `sleep`) dies with it although the thread that happened to
// ask for QEMU's start is long gone, and the next build removes the killed
// build's work files and temporary directory.
func TestKilledBuild(t *testing.T) {
	if os.Getenv("CLOUDIMG_KILLED_BUILD_HELPER") != "" {
		killedBuildHelper()
		return
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip(err)
	}
	root := t.TempDir()
	out := filepath.Join(root, "output")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledBuild$", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), "CLOUDIMG_KILLED_BUILD_HELPER="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the helper did not report within 30s")
	}
	var child int
	var tmp string
	if _, err := fmt.Sscanf(line, "ready %d %s", &child, &tmp); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	defer syscall.Kill(child, syscall.SIGKILL)
	if !alive(child) {
		t.Fatal("the child died with the thread that started it, before its parent process did")
	}

	// A live build's files are never touched.
	if removed, _ := sweepOutputDir(out, "other"); len(removed) > 0 {
		t.Fatalf("swept a running build's files: %q", removed)
	}
	if removed, _ := sweepTempDirs(root); len(removed) > 0 {
		t.Fatalf("swept a running build's temporary directory: %q", removed)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatal("the child outlived its killed parent by 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	removed, err := sweepOutputDir(out, "other")
	if err != nil || len(removed) != 2 {
		t.Errorf("output directory sweep: removed %q, %v", removed, err)
	}
	if removed, err := sweepTempDirs(root); err != nil || len(removed) != 1 || removed[0] != tmp {
		t.Errorf("temporary directory sweep: removed %q, %v; want %s", removed, err, tmp)
	}
	if left := names(t, out); len(left) != 0 {
		t.Errorf("left in the output directory: %q", left)
	}
}

// In the helper, the main goroutine keeps the main thread (which the
// runtime never ends), so the goroutine that starts `sleep` below runs on a
// thread that ends with it.
func init() {
	if os.Getenv("CLOUDIMG_KILLED_BUILD_HELPER") != "" {
		runtime.LockOSThread()
	}
}

// killedBuildHelper claims an image in <root>/output, makes its work files
// and a temporary directory, and starts `sleep` from a locked thread that
// then ends; it reports and waits to be killed.
func killedBuildHelper() {
	root := os.Getenv("CLOUDIMG_KILLED_BUILD_HELPER")
	image := filepath.Join(root, "output", "vm.qcow2")
	if _, ok, err := claimImage(image); !ok || err != nil {
		fmt.Println("claim failed", err)
		os.Exit(1)
	}
	for _, suf := range []string{buildingSuffix, efivarsSuffix} {
		if err := os.WriteFile(workFile(image, suf), nil, 0o644); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	tmp, _, err := makeTempDir(root)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	type started struct {
		pid, tid int
	}
	ch := make(chan started)
	go func() {
		runtime.LockOSThread() // the runtime ends this thread with the goroutine
		cmd := exec.Command("sleep", "120")
		if err := startTied(cmd, func(error) {}); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		ch <- started{cmd.Process.Pid, syscall.Gettid()}
	}()
	s := <-ch
	if s.tid == os.Getpid() {
		fmt.Println("sleep was started from the main thread")
		os.Exit(1)
	}
	// Wait until the thread that asked for the start is gone.
	for {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(s.tid)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("ready %d %s\n", s.pid, tmp)
	time.Sleep(time.Minute) // until killed
	os.Exit(1)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// A QEMU that someone else killed is seen as exited before it is waited
// for: the builder's own kill must not hide that fault.
func TestExitedAlready(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer cmd.Wait()
	if exitedAlready(cmd.Process.Pid) {
		t.Fatal("a running process seen as exited")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !exitedAlready(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("a killed process not seen as exited (not waited for yet)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// How QEMU's end reads in a fault: a signal, or a status with the last line
// of its stderr.
func TestExitWhat(t *testing.T) {
	d := &QemuDriver{QemuBinary: "sh"}
	vm, err := d.Start([]string{"-c", "echo 'qemu: something broke' >&2; exit 3"}, "")
	if err != nil {
		t.Fatal(err)
	}
	<-vm.Done()
	if what, signaled := vm.(*qemuVM).exitWhat(); what != "QEMU exited with status 3: qemu: something broke" || signaled {
		t.Errorf("got %q %v", what, signaled)
	}
	vm, err = d.Start([]string{"-c", "exec sleep 60"}, "")
	if err != nil {
		t.Fatal(err)
	}
	vm.Kill()
	if what, signaled := vm.(*qemuVM).exitWhat(); what != "QEMU exited with signal 9 (killed)" || !signaled {
		t.Errorf("got %q %v", what, signaled)
	}
}
