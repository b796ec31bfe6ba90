package kvm

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepWaitSSH probes the forwarded port every fraction of a second until the
// guest's sshd answers with its banner, so that the SDK's connect step (which
// waits 5 s between tries) connects on its first try. QEMU accepts TCP on the
// forward before sshd listens, so a TCP connect alone proves nothing.
//
// Uses: config, ui, vm and ssh_host_port (stepRun), serial_log (stepPrepare).
// Produces: nothing.
type stepWaitSSH struct {
	interval time.Duration
}

func (s *stepWaitSSH) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	vm := state.Get("vm").(VM)
	port := state.Get("ssh_host_port").(int)
	serial := state.Get("serial_log").(string)
	interval := s.interval
	if interval == 0 {
		interval = 250 * time.Millisecond
	}

	ui.Say("Waiting for the guest's SSH server...")
	addr := net.JoinHostPort(cfg.Comm.SSHHost, strconv.Itoa(port))
	deadline := time.NewTimer(cfg.Comm.SSHTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if banner, ok := sshBanner(addr, 2*time.Second); ok {
			ui.Say("SSH server is up: " + banner)
			return multistep.ActionContinue
		}
		if line := kernelPanic(serial); line != "" {
			return halt(state, fmt.Errorf("the guest kernel panicked while booting: %s\nLast lines of the serial console (%s):\n%s", line, serial, tailFile(serial, 30)))
		}
		select {
		case <-ctx.Done():
			return halt(state, ctx.Err())
		case <-vm.Done():
			return halt(state, fmt.Errorf("QEMU stopped before SSH came up: %v\nLast lines of the serial console (%s):\n%s", vm.Err(), serial, tailFile(serial, 30)))
		case <-deadline.C:
			return halt(state, fmt.Errorf("timeout waiting for SSH on %s after %s (ssh_timeout)\nLast lines of the serial console (%s):\n%s", addr, cfg.Comm.SSHTimeout, serial, tailFile(serial, 30)))
		case <-tick.C:
		}
	}
}

func (s *stepWaitSSH) Cleanup(multistep.StateBag) {}

// kernelPanic returns the panic line of the serial console, if any.
func kernelPanic(serial string) string {
	for _, line := range strings.Split(tailFile(serial, 200), "\n") {
		if i := strings.Index(line, "Kernel panic - not syncing"); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	return ""
}

// sshBanner connects and reads the server's identification line.
func sshBanner(addr string, timeout time.Duration) (string, bool) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", false
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-") {
		return "", false
	}
	return strings.TrimSpace(line), true
}
