package kvm

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// startTied starts cmd so that it dies with this process however this
// process ends, SIGKILL included: the kernel sends it SIGKILL when its
// parent goes (PR_SET_PDEATHSIG). The kernel means the parent *thread*, and
// Go may retire the thread that happened to start a child; so a goroutine
// locked to its thread starts QEMU and stays, holding the thread, until
// QEMU has exited (then the goroutine ends locked, and the runtime ends the
// thread with it). exited gets cmd.Wait's result.
//
// QEMU gets a process group of its own: a Ctrl-C in the terminal reaches
// Packer, which cancels the build and the builder stops QEMU in its
// cleanup, instead of QEMU quitting by itself in the middle of a step.
func startTied(cmd *exec.Cmd, exited func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}

// exitedAlready reports whether the process pid has exited (a zombie not
// yet waited for, or gone).
func exitedAlready(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}
