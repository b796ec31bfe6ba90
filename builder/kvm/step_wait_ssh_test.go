package kvm

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// fakeVM is a VM that runs until killed.
type fakeVM struct {
	done      chan struct{}
	err       error
	powerdown func()
	killed    bool
	expected  bool
	watch     *FaultWatch
	fault     error
}

func (v *fakeVM) Watch(w FaultWatch) error { v.watch = &w; return nil }
func (v *fakeVM) Fault() error             { return v.fault }
func (v *fakeVM) ExpectShutdown()          { v.expected = true }

func newFakeVM() *fakeVM                { return &fakeVM{done: make(chan struct{})} }
func (v *fakeVM) Done() <-chan struct{} { return v.done }
func (v *fakeVM) Err() error            { <-v.done; return v.err }
func (v *fakeVM) Kill()                 { v.killed = true; v.exit(nil) }
func (v *fakeVM) exit(err error) {
	select {
	case <-v.done:
	default:
		v.err = err
		close(v.done)
	}
}
func (v *fakeVM) Powerdown() error {
	if v.powerdown != nil {
		v.powerdown()
	}
	return nil
}

func waitSSHState(t *testing.T, vm VM, port int, serial string) multistep.StateBag {
	t.Helper()
	cfg := &Config{}
	cfg.Comm.SSHHost = "127.0.0.1"
	cfg.Comm.SSHTimeout = 20 * time.Second
	state := new(multistep.BasicStateBag)
	state.Put("config", cfg)
	state.Put("ui", packersdk.TestUi(t))
	state.Put("vm", vm)
	state.Put("ssh_host_port", port)
	state.Put("serial_log", serial)
	return state
}

func TestWaitSSHNeedsTheBanner(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Like QEMU's forward before sshd runs: accept, then say nothing and
	// close; after three connections, the banner.
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if n >= 3 {
				c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"))
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	state := waitSSHState(t, newFakeVM(), port, filepath.Join(t.TempDir(), "serial.log"))
	s := &stepWaitSSH{interval: 10 * time.Millisecond}
	if action := s.Run(context.Background(), state); action != multistep.ActionContinue {
		t.Fatalf("halted: %v", state.Get("error"))
	}
}

func TestWaitSSHFailsFastOnPanicAndExit(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens

	serial := filepath.Join(t.TempDir(), "serial.log")
	os.WriteFile(serial, []byte("[    0.5] ..MP-BIOS bug: 8254 timer not connected to IO-APIC\n[    0.6] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug\n"), 0o644)
	state := waitSSHState(t, newFakeVM(), port, serial)
	s := &stepWaitSSH{interval: 10 * time.Millisecond}
	if action := s.Run(context.Background(), state); action != multistep.ActionHalt {
		t.Fatal("did not halt on a kernel panic")
	}
	if err := state.Get("error").(error); !strings.Contains(err.Error(), "IO-APIC + timer") {
		t.Errorf("error does not quote the panic: %v", err)
	}

	os.WriteFile(serial, []byte("booting\n"), 0o644)
	vm := newFakeVM()
	vm.exit(os.ErrProcessDone)
	state = waitSSHState(t, vm, port, serial)
	if action := s.Run(context.Background(), state); action != multistep.ActionHalt {
		t.Fatal("did not halt when QEMU exited")
	}
	if err := state.Get("error").(error); !strings.Contains(err.Error(), "QEMU stopped") || !strings.Contains(err.Error(), "booting") {
		t.Errorf("error: %v", err)
	}
}
