package kvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ImageInfo is what the builder needs to know of a disk image.
type ImageInfo struct {
	Format      string `json:"format"`
	VirtualSize uint64 `json:"virtual-size"`
}

// Driver wraps the host programs: qemu-img and the QEMU process. Steps use
// only this interface, so their logic is tested with a fake.
type Driver interface {
	// Info reads the format and virtual size of an image.
	Info(path string) (*ImageInfo, error)
	// Convert copies src into a new dst of dstFormat, as opts say.
	Convert(ctx context.Context, src, srcFormat, dst, dstFormat string, opts ConvertOptions) error
	// Overlay creates a qcow2 dst backed by backing.
	Overlay(backing, backingFormat, dst string) error
	// Resize grows the image to size bytes.
	Resize(path, format string, size uint64) error
	// Start starts QEMU with args; the returned VM is running.
	Start(args []string, qmpSocket string) (VM, error)
}

// VM is a running QEMU process.
type VM interface {
	// Done is closed when QEMU has exited.
	Done() <-chan struct{}
	// Err is QEMU's exit error (nil for a clean exit) once Done is closed,
	// with the end of its stderr.
	Err() error
	// Watch connects to QMP and watches the VM for the rest of its life
	// (see vmWatcher): the first fault goes to w.OnFault. Call it once,
	// when QMP is ready.
	Watch(w FaultWatch) error
	// Powerdown asks the guest to power off (ACPI, through the watcher's
	// QMP connection); QEMU's exit is then no fault.
	Powerdown() error
	// ExpectShutdown says that the guest will power off now (a
	// shutdown_command), so that it is no fault.
	ExpectShutdown()
	// Kill stops QEMU at once and waits for it to exit. QEMU's exit is then
	// no fault, unless QEMU was already exiting by itself.
	Kill()
	// Fault is the watcher's fault, once QEMU has exited (waiting a few
	// seconds at most), or nil.
	Fault() error
}

// QemuDriver is the real Driver.
type QemuDriver struct {
	QemuBinary    string
	QemuImgBinary string
}

func (d *QemuDriver) qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.QemuImgBinary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", d.QemuImgBinary, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Info implements Driver.
func (d *QemuDriver) Info(path string) (*ImageInfo, error) {
	out, err := d.qemuImg(context.Background(), "info", "--output=json", path)
	if err != nil {
		return nil, err
	}
	var info ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("reading qemu-img info of %s: %w", path, err)
	}
	return &info, nil
}

// ConvertOptions are the choices of one conversion besides its files.
type ConvertOptions struct {
	// Compress writes compressed clusters (`qemu-img convert -c`, qcow2).
	Compress bool
	// CompressionType is the qcow2 `compression_type` of a compressed
	// output, "zstd" or "zlib"; "" leaves qemu-img's default (zlib).
	CompressionType string
	// OutOfOrder lets qemu-img write clusters in the order its parallel
	// coroutines finish them instead of the source's (`-W`).
	OutOfOrder bool
}

// convertArgs is the `qemu-img convert` command line for Convert.
func convertArgs(src, srcFormat, dst, dstFormat string, opts ConvertOptions) []string {
	args := []string{"convert", "-f", srcFormat, "-O", dstFormat}
	if opts.Compress {
		args = append(args, "-c")
		if opts.CompressionType != "" {
			args = append(args, "-o", "compression_type="+opts.CompressionType)
		}
	}
	if opts.OutOfOrder {
		args = append(args, "-W")
	}
	return append(args, src, dst)
}

// Convert implements Driver.
func (d *QemuDriver) Convert(ctx context.Context, src, srcFormat, dst, dstFormat string, opts ConvertOptions) error {
	_, err := d.qemuImg(ctx, convertArgs(src, srcFormat, dst, dstFormat, opts)...)
	return err
}

// Overlay implements Driver.
func (d *QemuDriver) Overlay(backing, backingFormat, dst string) error {
	_, err := d.qemuImg(context.Background(), "create", "-f", "qcow2", "-b", backing, "-F", backingFormat, dst)
	return err
}

// Resize implements Driver.
func (d *QemuDriver) Resize(path, format string, size uint64) error {
	_, err := d.qemuImg(context.Background(), "resize", "-f", format, path, strconv.FormatUint(size, 10))
	return err
}

// Start implements Driver. QEMU dies with the plugin (see startTied).
func (d *QemuDriver) Start(args []string, qmpSocket string) (VM, error) {
	cmd := exec.Command(d.QemuBinary, args...)
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	vm := &qemuVM{binary: d.QemuBinary, qmp: qmpSocket, stderr: stderr, done: make(chan struct{})}
	err := startTied(cmd, func(err error) {
		vm.waitErr = err
		if err != nil {
			vm.err = fmt.Errorf("%s exited: %v: %s", d.QemuBinary, err, strings.TrimSpace(stderr.String()))
		}
		close(vm.done)
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", d.QemuBinary, err)
	}
	vm.proc = cmd.Process
	return vm, nil
}

type qemuVM struct {
	binary  string
	proc    *os.Process
	qmp     string
	stderr  *tailBuffer
	done    chan struct{}
	waitErr error // cmd.Wait's
	err     error // with QEMU's stderr

	mu      sync.Mutex
	watcher *vmWatcher
}

func (v *qemuVM) Done() <-chan struct{} { return v.done }

func (v *qemuVM) Err() error {
	<-v.done
	return v.err
}

func (v *qemuVM) Kill() {
	// A QEMU killed by someone else may make a step fail (its SSH session
	// ends) before its exit is seen here: that exit stays a fault.
	if w := v.getWatcher(); w != nil && !exitedAlready(v.proc.Pid) {
		w.expect("kill")
	}
	select {
	case <-v.done:
		return
	default:
	}
	_ = v.proc.Kill()
	<-v.done
}

func (v *qemuVM) getWatcher() *vmWatcher {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.watcher
}

// Fault implements VM.
func (v *qemuVM) Fault() error {
	w := v.getWatcher()
	if w == nil {
		return nil
	}
	select {
	case <-v.done: // the watcher is reading QEMU's last words
		return w.result(5 * time.Second)
	default: // still running (-on-error=abort skips the cleanup)
		return w.result(0)
	}
}

// Watch implements VM.
func (v *qemuVM) Watch(spec FaultWatch) error {
	conn, err := net.DialTimeout("unix", v.qmp, qmpTimeout)
	if err != nil {
		return fmt.Errorf("QMP: %w", err)
	}
	w, err := watchQMP(conn, v.done, v.exitWhat, spec)
	if err != nil {
		conn.Close()
		return err
	}
	v.mu.Lock()
	v.watcher = w
	v.mu.Unlock()
	return nil
}

// exitWhat says how QEMU exited, e.g. "QEMU exited with signal 9
// (killed)", and whether a signal ended it.
func (v *qemuVM) exitWhat() (string, bool) {
	<-v.done
	tail := strings.TrimSpace(v.stderr.String())
	if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	var ee *exec.ExitError
	switch {
	case v.waitErr == nil:
		if tail != "" {
			return "QEMU exited: " + tail, false
		}
		return "QEMU exited", false
	case errors.As(v.waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("QEMU exited with signal %d (%s)", int(ws.Signal()), ws.Signal()), true
		}
		if tail != "" {
			return fmt.Sprintf("QEMU exited with status %d: %s", ee.ExitCode(), tail), false
		}
		return fmt.Sprintf("QEMU exited with status %d", ee.ExitCode()), false
	default:
		return "QEMU exited: " + v.waitErr.Error(), false
	}
}

// Powerdown sends system_powerdown through the watcher.
func (v *qemuVM) Powerdown() error {
	w := v.getWatcher()
	if w == nil {
		return errors.New("QMP: not connected")
	}
	w.expect("power-off")
	_, err := w.execute("system_powerdown")
	return err
}

// ExpectShutdown implements VM.
func (v *qemuVM) ExpectShutdown() {
	if w := v.getWatcher(); w != nil {
		w.expect("shutdown_command")
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// tailFile returns the last n lines of a text file ("" when unreadable).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(data), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
