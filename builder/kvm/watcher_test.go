package kvm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeQMP is QEMU's side of a QMP connection, driven by the test.
type fakeQMP struct {
	t    *testing.T
	conn net.Conn
	cmds chan fakeCmd
}

type fakeCmd struct {
	Execute string `json:"execute"`
	ID      int64  `json:"id"`
}

// newFakeQMP greets, answers qmp_capabilities (after the events in early,
// which QEMU may send first), then passes every command to f.cmds.
func newFakeQMP(t *testing.T, early ...string) (net.Conn, *fakeQMP) {
	client, server := net.Pipe()
	f := &fakeQMP{t: t, conn: server, cmds: make(chan fakeCmd, 16)}
	t.Cleanup(func() { server.Close(); client.Close() })
	go func() {
		defer close(f.cmds)
		r := bufio.NewReader(server)
		f.send(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var c fakeCmd
			if err := json.Unmarshal(line, &c); err != nil {
				t.Errorf("fake QMP: bad command %q: %v", line, err)
				return
			}
			if c.Execute == "qmp_capabilities" {
				for _, e := range early {
					f.send(e)
				}
				f.send(fmt.Sprintf(`{"return": {}, "id": %d}`, c.ID))
				continue
			}
			f.cmds <- c
		}
	}()
	return client, f
}

func (f *fakeQMP) send(line string) {
	_ = f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := f.conn.Write([]byte(line + "\n")); err != nil {
		f.t.Logf("fake QMP: write: %v", err)
	}
}

// next is the next command the watcher sent.
func (f *fakeQMP) next(want string) fakeCmd {
	f.t.Helper()
	select {
	case c := <-f.cmds:
		if c.Execute != want {
			f.t.Fatalf("watcher sent %q, want %q", c.Execute, want)
		}
		return c
	case <-time.After(5 * time.Second):
		f.t.Fatalf("watcher sent no %s", want)
	}
	return fakeCmd{}
}

// watchFixture is a watcher on a fake QMP peer and a fake QEMU process.
type watchFixture struct {
	w      *vmWatcher
	qmp    *fakeQMP
	exited chan struct{}
	faults chan error
	disk   string
	serial string
}

func newWatchFixture(t *testing.T, early ...string) *watchFixture {
	dir := t.TempDir()
	x := &watchFixture{exited: make(chan struct{}), faults: make(chan error, 4),
		disk: filepath.Join(dir, ".vm.building.qcow2"), serial: filepath.Join(dir, "serial.log")}
	if err := os.WriteFile(x.serial, []byte("[  OK  ] Reached target Multi-User System.\nKernel panic - not syncing: sysrq triggered crash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conn, f := newFakeQMP(t, early...)
	x.qmp = f
	w, err := watchQMP(conn, x.exited, func() (string, bool) { return "QEMU exited with signal 9 (killed)", true }, FaultWatch{
		Disk:    x.disk,
		Serial:  x.serial,
		Phase:   func() string { return "provisioning" },
		OnFault: func(err error) { x.faults <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	x.w = w
	return x
}

// exit is QEMU's exit: its end of the socket closes, the process is gone.
func (x *watchFixture) exit() {
	x.qmp.conn.Close()
	close(x.exited)
}

func (x *watchFixture) fault(t *testing.T) error {
	t.Helper()
	select {
	case err := <-x.faults:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no fault reported")
	}
	return nil
}

func (x *watchFixture) noFault(t *testing.T) {
	t.Helper()
	select {
	case <-x.w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not end after QEMU's exit")
	}
	select {
	case err := <-x.faults:
		t.Fatalf("unexpected fault: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func matches(t *testing.T, err error, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(err.Error()) {
			t.Errorf("fault %q does not match %q", err, p)
		}
	}
}

// QEMU's default write-error policy pauses the guest on ENOSPC with a
// BLOCK_IO_ERROR (nospace) and a STOP: one fault naming the filesystem.
func TestWatcherDiskFull(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "BLOCK_IO_ERROR", "data": {"device": "virtio0", "nospace": true, "node-name": "#block123", "reason": "No space left on device", "operation": "write", "action": "stop"}}`)
	x.qmp.send(`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "STOP"}`)
	err := x.fault(t)
	dir := filepath.Dir(x.disk)
	matches(t, err, `^the filesystem holding `+regexp.QuoteMeta(dir)+` is full \(\d+(\.\d)? [KMG]iB free\): QEMU paused the guest on a write error during provisioning$`)
	// The STOP's query-status is still answered; no second fault.
	c := x.qmp.next("query-status")
	x.qmp.send(fmt.Sprintf(`{"return": {"status": "io-error", "singlestep": false, "running": false}, "id": %d}`, c.ID))
	x.exit()
	x.noFault(t)
}

// A STOP alone (the BLOCK_IO_ERROR lost or rate-limited): the run state
// says io-error.
func TestWatcherStopIOError(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "STOP"}`)
	c := x.qmp.next("query-status")
	x.qmp.send(fmt.Sprintf(`{"return": {"status": "io-error", "singlestep": false, "running": false}, "id": %d}`, c.ID))
	matches(t, x.fault(t), `^the filesystem holding .* is full .*: QEMU paused the guest on a write error during provisioning$`)
}

// A STOP for another reason (e.g. a debugger) is no fault.
func TestWatcherStopPaused(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"event": "STOP"}`)
	c := x.qmp.next("query-status")
	x.qmp.send(fmt.Sprintf(`{"return": {"status": "paused", "running": false}, "id": %d}`, c.ID))
	x.w.expect("kill")
	x.exit()
	x.noFault(t)
}

func TestWatcherOtherIOError(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"event": "BLOCK_IO_ERROR", "data": {"device": "virtio0", "nospace": false, "reason": "Input/output error", "operation": "write", "action": "report"}}`)
	matches(t, x.fault(t), `^QEMU could not write the disk virtio0 \(Input/output error\): the guest got an I/O error during provisioning$`)
}

func TestWatcherPanicWithSerialTail(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"event": "GUEST_PANICKED", "data": {"action": "poweroff"}}`)
	err := x.fault(t)
	matches(t, err, `^the guest kernel panicked during provisioning\nLast lines of the serial console \(.*serial.log\):\n`, `Kernel panic - not syncing: sysrq`)
	// QEMU then shuts down and exits: still one fault.
	x.qmp.send(`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-panic"}}`)
	x.exit()
	x.noFault(t)
}

// A guest that powers itself off (a provisioner's `poweroff`) fails the
// build; QEMU's exit that follows is the same fault.
func TestWatcherUnaskedShutdown(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`)
	x.exit()
	matches(t, x.fault(t), `^the guest powered itself off \(nobody asked it to\) during provisioning\n`)
	x.noFault(t)
}

func TestWatcherQEMUExits(t *testing.T) {
	x := newWatchFixture(t)
	x.exit()
	err := x.fault(t)
	matches(t, err, `^QEMU exited with signal 9 \(killed\) during provisioning$`)
	// The builder asks for it after the steps' cleanup.
	if res := x.w.result(5 * time.Second); res == nil || res.Error() != err.Error() {
		t.Errorf("result after the exit: %v", res)
	}
}

// QEMU quitting on SIGTERM says so on stderr; the fault is the exit.
func TestWatcherHostSignal(t *testing.T) {
	x := newWatchFixture(t)
	x.qmp.send(`{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-signal"}}`)
	x.exit()
	matches(t, x.fault(t), `^QEMU exited with signal 9 \(killed\) after a shutdown \(host-signal\) during provisioning`)
}

// The power-off goes through the watcher's connection, and the guest's
// SHUTDOWN and QEMU's exit after it are no fault. An event that arrives
// while the command waits for its reply does not block it.
func TestWatcherPowerdown(t *testing.T) {
	x := newWatchFixture(t)
	errc := make(chan error, 1)
	go func() {
		x.w.expect("power-off")
		_, err := x.w.execute("system_powerdown")
		errc <- err
	}()
	c := x.qmp.next("system_powerdown")
	x.qmp.send(`{"event": "RTC_CHANGE", "data": {"offset": 0}}`)
	x.qmp.send(`{"event": "POWERDOWN"}`)
	x.qmp.send(fmt.Sprintf(`{"return": {}, "id": %d}`, c.ID))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	x.qmp.send(`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`)
	x.exit()
	x.noFault(t)
	if err := x.w.result(time.Second); err != nil {
		t.Errorf("result after a power-off: %v", err)
	}
	if _, err := x.w.execute("query-status"); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("a command after QEMU's exit: %v", err)
	}
}

// A command QEMU refuses returns QEMU's error.
func TestWatcherCommandError(t *testing.T) {
	x := newWatchFixture(t)
	errc := make(chan error, 1)
	go func() { _, err := x.w.execute("system_powerdown"); errc <- err }()
	c := x.qmp.next("system_powerdown")
	x.qmp.send(fmt.Sprintf(`{"error": {"class": "GenericError", "desc": "no ACPI"}, "id": %d}`, c.ID))
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "no ACPI") {
		t.Fatalf("got %v", err)
	}
}

// Events that QEMU sends before the capabilities reply are not lost.
func TestWatcherEarlyEvent(t *testing.T) {
	x := newWatchFixture(t, `{"event": "GUEST_PANICKED", "data": {"action": "pause"}}`)
	matches(t, x.fault(t), `^the guest kernel panicked`)
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 KiB", 12 << 10: "12 KiB", 3 << 19: "1.5 MiB", 12 << 20: "12 MiB", 20 << 30: "20 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
