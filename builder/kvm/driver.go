package kvm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
	// Convert copies src into a new dst of dstFormat (compressed if asked).
	Convert(ctx context.Context, src, srcFormat, dst, dstFormat string, compress bool) error
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
	// Powerdown asks the guest to power off (ACPI, through QMP).
	Powerdown() error
	// Kill stops QEMU at once and waits for it to exit.
	Kill()
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

// Convert implements Driver.
func (d *QemuDriver) Convert(ctx context.Context, src, srcFormat, dst, dstFormat string, compress bool) error {
	args := []string{"convert", "-f", srcFormat, "-O", dstFormat}
	if compress {
		args = append(args, "-c")
	}
	_, err := d.qemuImg(ctx, append(args, src, dst)...)
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

// Start implements Driver.
func (d *QemuDriver) Start(args []string, qmpSocket string) (VM, error) {
	cmd := exec.Command(d.QemuBinary, args...)
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", d.QemuBinary, err)
	}
	vm := &qemuVM{cmd: cmd, qmp: qmpSocket, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%s exited: %v: %s", d.QemuBinary, err, strings.TrimSpace(stderr.String()))
		}
		vm.err = err
		close(vm.done)
	}()
	return vm, nil
}

type qemuVM struct {
	cmd  *exec.Cmd
	qmp  string
	done chan struct{}
	err  error
}

func (v *qemuVM) Done() <-chan struct{} { return v.done }

func (v *qemuVM) Err() error {
	<-v.done
	return v.err
}

func (v *qemuVM) Kill() {
	select {
	case <-v.done:
		return
	default:
	}
	_ = v.cmd.Process.Kill()
	<-v.done
}

// Powerdown sends system_powerdown over QMP.
func (v *qemuVM) Powerdown() error {
	return qmpExecute(v.qmp, "system_powerdown", 10*time.Second)
}

// qmpExecute runs one QMP command: greeting, qmp_capabilities, command.
func qmpExecute(socket, command string, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return fmt.Errorf("QMP: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	readReply := func() error {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return fmt.Errorf("QMP: %w", err)
			}
			var msg struct {
				QMP    json.RawMessage `json:"QMP"`
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if err := json.Unmarshal(line, &msg); err != nil {
				return fmt.Errorf("QMP: %w", err)
			}
			switch {
			case msg.Error != nil:
				return fmt.Errorf("QMP: %s", msg.Error.Desc)
			case msg.QMP != nil, msg.Return != nil:
				return nil
			}
			// an asynchronous event: keep reading
		}
	}
	if err := readReply(); err != nil { // greeting
		return err
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, "{\"execute\":%q}\n", c); err != nil {
			return fmt.Errorf("QMP: %w", err)
		}
		if err := readReply(); err != nil {
			return err
		}
	}
	return nil
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
