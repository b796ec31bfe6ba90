package kvm

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepWaitCloudInit waits for cloud-init to finish on the guest with
// `cloud-init status --wait`. cloud-init may restart sshd while we wait,
// which cuts the session: the command is then run again on a new one.
type stepWaitCloudInit struct {
	retryInterval time.Duration
}

// Exit codes of `cloud-init status`: 0 done, 1 error, 2 degraded (23.4+).
const (
	cloudInitDone     = 0
	cloudInitDegraded = 2
)

func (s *stepWaitCloudInit) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	if cfg.CloudInitWait.False() {
		return multistep.ActionContinue
	}
	ui := state.Get("ui").(packersdk.Ui)
	comm := state.Get("communicator").(packersdk.Communicator)
	retry := s.retryInterval
	if retry == 0 {
		retry = time.Second
	}

	ui.Say("Waiting for cloud-init to finish...")
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.CloudInitTimeout)
	defer cancel()
	for {
		code, out, err := runRemote(ctx, comm, "cloud-init status --wait")
		switch {
		case parent.Err() != nil:
			return halt(state, parent.Err())
		case ctx.Err() != nil:
			return halt(state, fmt.Errorf("cloud-init did not finish within %s (cloud_init_timeout)%s", cfg.CloudInitTimeout, diagnose(comm)))
		case err != nil || code == packersdk.CmdDisconnect:
			// The session was cut (cloud-init restarting sshd): again.
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
			continue
		case code == cloudInitDone:
			ui.Say("cloud-init finished: " + lastLine(out))
			return multistep.ActionContinue
		case code == cloudInitDegraded:
			msg := "cloud-init finished degraded (recoverable errors)" + diagnose(comm)
			if cfg.CloudInitDegraded == "fail" {
				return halt(state, fmt.Errorf("%s\n(cloud_init_degraded = \"fail\")", msg))
			}
			ui.Say("Warning: " + msg + "\n(continuing: cloud_init_degraded = \"warn\")")
			return multistep.ActionContinue
		default:
			return halt(state, fmt.Errorf("cloud-init failed (exit %d): %s%s", code, lastLine(out), diagnose(comm)))
		}
	}
}

func (s *stepWaitCloudInit) Cleanup(multistep.StateBag) {}

// diagnose collects cloud-init's own account of what went wrong.
func diagnose(comm packersdk.Communicator) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b strings.Builder
	if _, out, err := runRemote(ctx, comm, "cloud-init status --long"); err == nil {
		fmt.Fprintf(&b, "\n--- cloud-init status --long\n%s", strings.TrimRight(out, "\n"))
	}
	if _, out, err := runRemote(ctx, comm, "sudo -n tail -n 40 /var/log/cloud-init-output.log"); err == nil {
		fmt.Fprintf(&b, "\n--- tail of /var/log/cloud-init-output.log\n%s", strings.TrimRight(out, "\n"))
	}
	return b.String()
}

// runRemote runs a command through the communicator and returns its exit
// code and combined output. It stops waiting when ctx ends.
func runRemote(ctx context.Context, comm packersdk.Communicator, command string) (int, string, error) {
	var out safeBuffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: &out}
	if err := comm.Start(ctx, cmd); err != nil {
		return 0, "", err
	}
	exited := make(chan int, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case code := <-exited:
		return code, out.String(), nil
	case <-ctx.Done():
		return 0, out.String(), ctx.Err()
	}
}

// safeBuffer is a bytes.Buffer that a command's output goroutines and the
// reader may use concurrently.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
