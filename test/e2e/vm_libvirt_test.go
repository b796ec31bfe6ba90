//go:build e2e

package e2e

// The libvirt side of the VM harness: bootVM with seedVirtInstall creates
// the guest the way a libvirt user does, with
//
//	virt-install --import --cloud-init ssh-key=FILE …
//
// on qemu:///system, from a copy of the image that libvirt-qemu can read.
// The guest is reached as every harness guest is, over an SSH forward on
// 127.0.0.1: virt-install's --network none plus a QEMU user-mode NIC with
// restrict=on and a hostfwd through --qemu-commandline (no libvirt network,
// no bridge, no address off the loopback; libvirt 9.0's own user/passt
// interface would let the guest reach out).
//
// Without a service manager nothing runs libvirtd: when qemu:///system does
// not answer, useLibvirt starts virtlogd and libvirtd as children of the
// test binary and stops them (by their PIDs) when the last test that needed
// them is done. Domains are shut down and undefined when their test ends.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

const libvirtURI = "qemu:///system"

// virsh runs `virsh -c qemu:///system args…` (2 minutes at most) and
// returns its trimmed combined output.
func virsh(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-c", libvirtURI}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// libvirtAnswers reports whether a libvirtd answers on qemu:///system.
func libvirtAnswers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "virsh", "-c", libvirtURI, "version").Run() == nil
}

// Several test binaries (parallel `go test` runs, other checkouts) may use
// the one system libvirtd at the same time, so the decision to start and to
// stop the daemons is shared through files in libvirtStateDir:
//
//	lock     an exclusive flock around starting and around the stop decision
//	users    every process using libvirt holds a shared flock on it
//	daemons  "name pid starttime" of the daemons an e2e process started
//
// The process that finds, when its last test is done, nobody else holding
// users stops the daemons listed in daemons (by PID, after checking that
// the PID is still that daemon). The daemons run in their own session, not
// tied to the process that started them: it may end before the others. If
// every user dies, the next run that starts finds them answering and its
// last user stops them.
const libvirtStateDir = "/run/cloudimg-e2e-libvirt"

var libvirtState struct {
	sync.Mutex
	users     int      // tests of this process using libvirt right now
	usersLock *os.File // the shared flock on users, held while users > 0
}

// useLibvirt makes sure a libvirtd answers on qemu:///system while the test
// runs: it uses the one that answers, or starts virtlogd and libvirtd; the
// last user of the daemons that e2e tests started stops them.
func useLibvirt(t testing.TB) {
	t.Helper()
	for _, p := range []string{"virsh", "virt-install", "libvirtd", "virtlogd", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: install libvirt-daemon-system libvirt-daemon-driver-qemu virtinst (make deps)", p)
		}
	}
	libvirtState.Lock()
	defer libvirtState.Unlock()
	if libvirtState.users == 0 {
		if err := acquireLibvirt(t.Logf); err != nil {
			t.Fatalf("libvirt: %v", err)
		}
	}
	libvirtState.users++
	t.Cleanup(func() {
		libvirtState.Lock()
		defer libvirtState.Unlock()
		libvirtState.users--
		if libvirtState.users == 0 {
			releaseLibvirt(t.Logf)
		}
	})
}

// flockFile opens (creating) path and takes a flock of kind how on it.
func flockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, nil
}

// acquireLibvirt registers this process as a user of libvirt and starts the
// daemons when nothing answers. The caller holds libvirtState.
func acquireLibvirt(logf func(string, ...any)) error {
	if err := os.MkdirAll(libvirtStateDir, 0o755); err != nil {
		return err
	}
	lk, err := flockFile(filepath.Join(libvirtStateDir, "lock"), syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer lk.Close()
	users, err := flockFile(filepath.Join(libvirtStateDir, "users"), syscall.LOCK_SH)
	if err != nil {
		return err
	}
	if !libvirtAnswers() {
		start := time.Now()
		if err := startLibvirt(); err != nil {
			users.Close()
			return err
		}
		logf("libvirt: started virtlogd/libvirtd (%s; logs in %s)", time.Since(start).Round(100*time.Millisecond), filepath.Join(suite.work, "libvirt"))
	}
	libvirtState.usersLock = users
	return nil
}

// releaseLibvirt unregisters this process; if no other process uses
// libvirt, it stops the daemons e2e tests started. The caller holds
// libvirtState.
func releaseLibvirt(logf func(string, ...any)) {
	if libvirtState.usersLock == nil {
		return
	}
	lk, err := flockFile(filepath.Join(libvirtStateDir, "lock"), syscall.LOCK_EX)
	if err != nil {
		logf("libvirt: %v", err)
		return
	}
	defer lk.Close()
	libvirtState.usersLock.Close()
	libvirtState.usersLock = nil
	users, err := flockFile(filepath.Join(libvirtStateDir, "users"), syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		logf("libvirt: other test processes use libvirt; its daemons stay for them")
		return
	}
	defer users.Close()
	stopRecordedDaemons(logf)
}

// daemonRecord is one line of the daemons file.
type daemonRecord struct {
	name      string
	pid       int
	starttime string // field 22 of /proc/PID/stat: tells a reused PID apart
}

func daemonsFile() string { return filepath.Join(libvirtStateDir, "daemons") }

func readDaemonRecords() []daemonRecord {
	b, _ := os.ReadFile(daemonsFile())
	var recs []daemonRecord
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err == nil {
			recs = append(recs, daemonRecord{f[0], pid, f[2]})
		}
	}
	return recs
}

func writeDaemonRecords(recs []daemonRecord) error {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %d %s\n", r.name, r.pid, r.starttime)
	}
	return os.WriteFile(daemonsFile(), []byte(b.String()), 0o644)
}

// procStartTime is field 22 of /proc/PID/stat ("" if there is no such
// process, or it is a zombie).
func procStartTime(pid int) string {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(st), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(st[i+1:])) // f[0] is field 3, the state
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19]
}

// alive reports whether the recorded daemon still runs (the same process).
func (r daemonRecord) alive() bool {
	st := procStartTime(r.pid)
	return st != "" && st == r.starttime
}

// stopRecordedDaemons stops the daemons in the daemons file, newest first
// (SIGTERM, SIGKILL after 30 s), and empties the file. The caller holds
// the lock and the exclusive users lock.
func stopRecordedDaemons(logf func(string, ...any)) {
	recs := readDaemonRecords()
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if !r.alive() {
			continue
		}
		_ = syscall.Kill(r.pid, syscall.SIGTERM)
		deadline := time.Now().Add(30 * time.Second)
		for r.alive() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if r.alive() {
			_ = syscall.Kill(r.pid, syscall.SIGKILL)
			logf("libvirt: %s (pid %d) did not stop within 30 s of SIGTERM; killed", r.name, r.pid)
			continue
		}
		logf("libvirt: stopped %s (pid %d)", r.name, r.pid)
	}
	os.Remove(daemonsFile())
}

// startDaemon starts argv in its own session (it may outlive this process,
// for other test processes) with its output in logPath, and records it.
func startDaemon(name, logPath string, argv ...string) (daemonRecord, <-chan struct{}, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return daemonRecord{}, nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return daemonRecord{}, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	r := daemonRecord{name: name, pid: cmd.Process.Pid}
	for i := 0; i < 50 && r.starttime == ""; i++ {
		if r.starttime = procStartTime(r.pid); r.starttime == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var recs []daemonRecord
	for _, old := range readDaemonRecords() {
		if old.alive() {
			recs = append(recs, old)
		}
	}
	if err := writeDaemonRecords(append(recs, r)); err != nil {
		_ = cmd.Process.Kill()
		return r, exited, err
	}
	return r, exited, nil
}

// startLibvirt starts virtlogd (unless one listens) and libvirtd, and waits
// until qemu:///system answers. The caller holds the lock file.
//
// Where /dev/kvm exists but is no usable KVM (accelerator() is tcg), libvirt
// 9.0 re-probes QEMU's capabilities on every lookup (its probe opens
// /dev/kvm with CAP_DAC_OVERRIDE and sees KVM, its check as libvirt-qemu
// does not), which makes a virt-install take minutes. libvirtd then runs in
// a private mount namespace where /dev/kvm is an unreadable regular file
// (probe and check agree: no KVM) and qemu.conf has `namespaces = [ ]` (its
// per-domain /dev would have to move that mount). Nothing outside the
// daemon's namespace changes.
func startLibvirt() error {
	// A libvirt network set to autostart would come up with libvirtd: a
	// bridge with a private-range address, which the tests must not make.
	if ents, _ := os.ReadDir("/etc/libvirt/qemu/networks/autostart"); len(ents) > 0 {
		return fmt.Errorf("libvirt networks are set to autostart (/etc/libvirt/qemu/networks/autostart: %s); the tests do not start libvirtd with them: run `virsh net-autostart --disable NAME` or start libvirtd yourself", ents[0].Name())
	}
	dir := filepath.Join(suite.work, "libvirt")
	for _, d := range []string{dir, "/var/log/libvirt", "/var/run/libvirt"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if !unixAnswers("/run/libvirt/virtlogd-sock") {
		r, exited, err := startDaemon("virtlogd", filepath.Join(dir, "virtlogd.log"), "virtlogd")
		if err != nil {
			return err
		}
		if err := waitFor(20*time.Second, exited, func() bool { return unixAnswers("/run/libvirt/virtlogd-sock") }); err != nil {
			_ = syscall.Kill(r.pid, syscall.SIGTERM)
			return fmt.Errorf("virtlogd: %v\n%s", err, tailFile(filepath.Join(dir, "virtlogd.log"), 20))
		}
	}
	argv := []string{"libvirtd"}
	if _, err := os.Stat("/dev/kvm"); err == nil && accelerator() == "tcg" {
		noKVM := filepath.Join(dir, "no-kvm")
		writeFile0(noKVM, nil, 0)
		conf, err := os.ReadFile("/etc/libvirt/qemu.conf")
		if err != nil {
			return err
		}
		qemuConf := filepath.Join(dir, "qemu.conf")
		conf = append(conf, "\n# cloudimg e2e: no per-domain /dev (it would have to move the /dev/kvm mount)\nnamespaces = [ ]\n"...)
		if err := os.WriteFile(qemuConf, conf, 0o600); err != nil {
			return err
		}
		argv = []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$1" /dev/kvm && mount --bind "$2" /etc/libvirt/qemu.conf && exec libvirtd`,
			"sh", noKVM, qemuConf}
	}
	r, exited, err := startDaemon("libvirtd", filepath.Join(dir, "libvirtd.log"), argv...)
	if err != nil {
		return err
	}
	if err := waitFor(2*time.Minute, exited, libvirtAnswers); err != nil {
		_ = syscall.Kill(r.pid, syscall.SIGTERM)
		return fmt.Errorf("libvirtd (%s): %v\n%s", strings.Join(argv, " "), err, tailFile(filepath.Join(dir, "libvirtd.log"), 20))
	}
	return nil
}

// writeFile0 writes a file with the given mode, ignoring the umask.
func writeFile0(path string, b []byte, mode os.FileMode) {
	_ = os.WriteFile(path, b, 0o600)
	_ = os.Chmod(path, mode)
}

// unixAnswers reports whether something accepts connections on the socket.
func unixAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitFor polls ok every 250 ms until it is true, exited is closed, or
// timeout has passed.
func waitFor(timeout time.Duration, exited <-chan struct{}, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		select {
		case <-exited:
			return errors.New("it exited")
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", timeout)
		}
	}
}

// libvirtDomain is the libvirt domain of a seedVirtInstall VM.
type libvirtDomain struct {
	name string
	pid  int // the QEMU process of the domain's current run
	// onRebootDestroy: the running definition stops the domain when the
	// guest reboots. virt-install starts a --cloud-init domain with such a
	// first-boot definition (its seed and SMBIOS serial attached) and
	// defines the lasting one (without them, on_reboot=restart) beside it.
	onRebootDestroy bool
	// external: the domain's life is not the harness's (Terraform creates
	// and destroys it): stop only forgets it.
	external bool
}

// live libvirt domains (name → QEMU pid), destroyed by killAllVMs if a test
// left one behind.
var liveDomains struct {
	sync.Mutex
	m map[string]int
}

// bootLibvirt creates and starts v's domain with virt-install, from a copy
// of img, and (unless opts.NoWaitSSH) waits until root can log in with the
// VM's key.
func (v *vm) bootLibvirt(img string, opts vmOptions) {
	t := v.t
	t.Helper()
	if opts.UEFI {
		t.Fatal("bootVM: seedVirtInstall boots with the BIOS only")
	}
	useLibvirt(t)
	d := &libvirtDomain{name: "cloudimg-e2e-" + randHex(4)}
	v.dom = d
	v.QemuLog = "/var/log/libvirt/qemu/" + d.name + ".log"

	// libvirt-qemu must be able to read the disk (libvirt chowns the file
	// itself, not the directories above it) and every backing file: a
	// standalone copy, where libvirt-qemu can reach it.
	v.Overlay = filepath.Join(v.Dir, "disk.qcow2")
	if !othersCanTraverse(v.Dir) {
		v.Overlay = filepath.Join("/var/lib/libvirt/images", d.name+".qcow2")
	}
	for _, p := range []string{v.Overlay, v.SerialLog, v.KeyPath} {
		if strings.Contains(p, ",") {
			t.Fatalf("bootVM: virt-install cannot take the path %q (a comma)", p)
		}
	}
	start := time.Now()
	if err := copyFile(img, v.Overlay); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied the image to %s for libvirt (%s)", v.Overlay, time.Since(start).Round(100*time.Millisecond))

	t.Cleanup(func() {
		if t.Failed() {
			if s := tailFile(v.SerialLog, 60); s != "" {
				t.Logf("test failed; last 60 lines of %s:\n%s", v.SerialLog, s)
			}
			if s := tailFile(v.QemuLog, 10); s != "" {
				t.Logf("last lines of %s:\n%s", v.QemuLog, s)
			}
		}
		if err := v.Stop(); err != nil {
			t.Logf("stopping the VM: %v", err)
		}
		if !t.Failed() || strings.HasPrefix(v.Overlay, "/var/lib/libvirt/") {
			os.Remove(v.Overlay)
		}
	})

	machine, bus := opts.Machine, "pcie.0"
	switch machine {
	case "", "q35":
		machine = "q35"
	case "pc":
		bus = "pci.0"
	default:
		t.Fatalf("bootVM: machine %q: q35 or pc", machine)
	}
	virtType, cpu := "qemu", cpuModel(v.Accel)
	if v.Accel == "kvm" {
		virtType, cpu = "kvm", "host-passthrough"
	}
	logPath := filepath.Join(v.Dir, "virt-install.log")
	var lastOut string
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{
			"--connect", libvirtURI, "--name", d.name,
			"--virt-type", virtType, "--osinfo", "linux2022", "--machine", machine,
			"--memory", strconv.Itoa(opts.MemoryMiB), "--vcpus", strconv.Itoa(opts.CPUs), "--cpu", cpu,
			"--import", "--disk", "path=" + v.Overlay + ",format=qcow2,bus=virtio",
			"--cloud-init", "ssh-key=" + v.KeyPath + ".pub",
			"--network", "none",
			// The NIC gets a slot of its own (on q35 libvirt's PCIe root
			// ports take 00:01.x, where QEMU would put it). The = form:
			// argparse takes a separate value starting with "-" for an option.
			fmt.Sprintf("--qemu-commandline=-netdev user,id=e2enet0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22 "+
				"-device virtio-net-pci,netdev=e2enet0,mac=%s,bus=%s,addr=0x10", port, v.MAC, bus),
			"--serial", "file,path=" + v.SerialLog,
			"--graphics", "none", "--noautoconsole",
		}
		writeFile(t, filepath.Join(v.Dir, "virt-install.cmdline"), []byte(shellQuote(append([]string{"virt-install"}, args...))+"\n"), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		begin := time.Now()
		out, err := exec.CommandContext(ctx, "virt-install", args...).CombinedOutput()
		cancel()
		appendFile(logPath, fmt.Sprintf("== attempt %d, %s\n%s\n", attempt, time.Since(begin).Round(100*time.Millisecond), out))
		if err == nil {
			v.SSHPort, v.Started = port, time.Now()
			t.Logf("virt-install created and started domain %s in %s", d.name, time.Since(begin).Round(100*time.Millisecond))
			break
		}
		lastOut = string(out) + tailFile(v.QemuLog, 5)
		if _, e := virsh("dominfo", d.name); e == nil {
			_, _ = virsh("destroy", d.name)
			_, _ = virsh("undefine", d.name)
		}
		if attempt < 5 && (strings.Contains(lastOut, "hostfwd") || strings.Contains(lastOut, "host forwarding")) {
			t.Logf("QEMU could not forward port %d (attempt %d), trying another", port, attempt)
			continue
		}
		t.Fatalf("virt-install: %v\n%s", err, lastOut)
	}
	if err := d.attach(v); err != nil {
		t.Fatalf("libvirt domain %s: %v", d.name, err)
	}
	t.Logf("VM booting %s (libvirt domain %s, copy %s), virt %s, machine %s, %d vCPU, seed %s, ssh %s@127.0.0.1:%d, MAC %s, on_reboot %s; serial %s",
		img, d.name, v.Overlay, virtType, machine, v.CPUs, v.Seed, v.User, v.SSHPort, v.MAC,
		map[bool]string{true: "destroy", false: "restart"}[d.onRebootDestroy], v.SerialLog)
	if !opts.NoWaitSSH {
		if err := v.waitSSH(); err != nil {
			t.Fatalf("SSH: %v", err)
		}
	}
}

var onRebootRe = regexp.MustCompile(`<on_reboot>\s*(\w+)\s*</on_reboot>`)

// attach reads the running domain's definition (kept in the test dir) and
// QEMU's PID, and watches that process.
func (d *libvirtDomain) attach(v *vm) error {
	live, err := virsh("dumpxml", d.name)
	if err != nil {
		return fmt.Errorf("virsh dumpxml: %v: %s", err, live)
	}
	writeFile(v.t, filepath.Join(v.Dir, "domain-running.xml"), []byte(live+"\n"), 0o644)
	if inactive, err := virsh("dumpxml", "--inactive", d.name); err == nil {
		writeFile(v.t, filepath.Join(v.Dir, "domain-defined.xml"), []byte(inactive+"\n"), 0o644)
	}
	m := onRebootRe.FindStringSubmatch(live)
	d.onRebootDestroy = m != nil && m[1] == "destroy"
	b, err := os.ReadFile("/run/libvirt/qemu/" + d.name + ".pid")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("QEMU pid file: %v", err)
	}
	liveDomains.Lock()
	if liveDomains.m == nil {
		liveDomains.m = map[string]int{}
	}
	liveDomains.m[d.name] = pid
	liveDomains.Unlock()
	d.pid = pid
	v.setProcess(watchPID(pid))
	return nil
}

// watchPID returns a qemuProc whose exited channel is closed once pid (not
// a child of ours) is gone or a zombie.
func watchPID(pid int) *qemuProc {
	p := &qemuProc{exited: make(chan struct{})}
	go func() {
		for !procGone(pid) {
			time.Sleep(500 * time.Millisecond)
		}
		close(p.exited)
	}()
	return p
}

// afterGuestReboot is called by vm.Reboot once the guest was told to
// reboot. A domain still on virt-install's first-boot definition is
// stopped by libvirt; it is then started again with `virsh start`, as its
// user would (the lasting definition: no seed, no SMBIOS serial).
func (d *libvirtDomain) afterGuestReboot(v *vm, deadline time.Time) {
	v.t.Helper()
	if !d.onRebootDestroy {
		return
	}
	select {
	case <-v.process().exited:
	case <-time.After(time.Until(deadline)):
		v.t.Fatalf("libvirt did not stop domain %s at the guest's reboot (on_reboot destroy)", d.name)
	}
	// QEMU is gone; libvirt marks the domain shut off a moment later.
	if err := waitFor(time.Minute, nil, func() bool { st, _ := virsh("domstate", d.name); return st == "shut off" }); err != nil {
		st, _ := virsh("domstate", d.name)
		v.t.Fatalf("domain %s: QEMU exited at the guest's reboot, but libvirt says %q: %v", d.name, st, err)
	}
	out, err := virsh("start", d.name)
	if err != nil {
		v.t.Fatalf("virsh start %s: %v: %s", d.name, err, out)
	}
	v.t.Logf("libvirt stopped domain %s at the guest's reboot (virt-install's first-boot definition has on_reboot=destroy); started it again with virsh start", d.name)
	if err := d.attach(v); err != nil {
		v.t.Fatalf("libvirt domain %s: %v", d.name, err)
	}
}

// stop shuts the domain down by ACPI (virsh shutdown; virsh destroy after
// 60 s) and undefines it.
func (d *libvirtDomain) stop(v *vm) error {
	if d.external {
		return nil // still in liveDomains until forget: killLibvirtDomains' last resort
	}
	var errs []string
	if p := v.process(); p != nil {
		select {
		case <-p.exited:
		default:
			start := time.Now()
			if out, err := virsh("shutdown", d.name); err != nil {
				v.t.Logf("virsh shutdown %s: %v: %s", d.name, err, out)
			}
			select {
			case <-p.exited:
				v.t.Logf("VM powered off in %s", time.Since(start).Round(100*time.Millisecond))
			case <-time.After(60 * time.Second):
				if out, err := virsh("destroy", d.name); err != nil {
					errs = append(errs, fmt.Sprintf("virsh destroy: %v: %s", err, out))
				}
				select {
				case <-p.exited:
				case <-time.After(30 * time.Second):
					// libvirtd gone or stuck: the domain's QEMU is ours to end.
					if pid := d.pid; pid > 0 && !procGone(pid) {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						errs = append(errs, fmt.Sprintf("QEMU (pid %d) killed", pid))
					}
				}
				errs = append(errs, "the guest did not power off within 60 s of virsh shutdown; the domain was destroyed")
			}
		}
	}
	if out, err := virsh("undefine", d.name); err != nil && !strings.Contains(out, "failed to get domain") {
		errs = append(errs, fmt.Sprintf("virsh undefine %s: %v: %s", d.name, err, out))
	}
	liveDomains.Lock()
	delete(liveDomains.m, d.name)
	liveDomains.Unlock()
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// forget drops the domain from liveDomains (once something else, such as
// Terraform, has removed it).
func (d *libvirtDomain) forget() {
	liveDomains.Lock()
	delete(liveDomains.m, d.name)
	liveDomains.Unlock()
}

// killLibvirtDomains destroys and undefines the domains a test left behind
// (killing their QEMU when virsh cannot), then stops the daemons this
// binary started; it returns the number of domains.
func killLibvirtDomains() int {
	liveDomains.Lock()
	n := 0
	for name, pid := range liveDomains.m {
		if _, err := virsh("destroy", name); err != nil && !procGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_, _ = virsh("undefine", name)
		n++
	}
	liveDomains.m = nil
	liveDomains.Unlock()
	libvirtState.Lock()
	releaseLibvirt(func(f string, a ...any) { fmt.Fprintf(os.Stderr, "e2e: "+f+"\n", a...) })
	libvirtState.Unlock()
	return n
}

// othersCanTraverse reports whether every directory from / down to dir can
// be searched by any user (libvirt-qemu).
func othersCanTraverse(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

func appendFile(path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(s)
}
