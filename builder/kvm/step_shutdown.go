package kvm

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepShutdown powers the guest off without needing SSH (after the reset
// provisioner the build user no longer exists): ACPI power-down through QMP,
// or shutdown_command when one is set; after shutdown_timeout QEMU is
// stopped with a warning. Either way the VM watcher is told first, so the
// power-off is no fault.
//
// Uses: config, ui, vm (stepRun), communicator (the SDK's StepConnect).
// Produces: nothing.
type stepShutdown struct{}

func (s *stepShutdown) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	vm := state.Get("vm").(VM)

	if cfg.ShutdownCommand != "" {
		ui.Say("Shutting down with shutdown_command...")
		vm.ExpectShutdown()
		comm := state.Get("communicator").(packersdk.Communicator)
		cmd := &packersdk.RemoteCmd{Command: cfg.ShutdownCommand}
		if err := comm.Start(ctx, cmd); err != nil {
			return halt(state, fmt.Errorf("shutdown_command: %w (after the reset provisioner the build user is gone: leave shutdown_command unset to power off through QMP)", err))
		}
	} else {
		ui.Say("Powering off the guest (ACPI, through QMP)...")
		if err := vm.Powerdown(); err != nil {
			ui.Say(fmt.Sprintf("Warning: power-down request failed: %v", err))
		}
	}

	timer := time.NewTimer(cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-vm.Done():
		if err := vm.Err(); err != nil {
			return halt(state, fmt.Errorf("QEMU failed while shutting down: %w", err))
		}
		return multistep.ActionContinue
	case <-timer.C:
		ui.Say(fmt.Sprintf("Warning: the guest did not power off within %s (shutdown_timeout); stopping QEMU. The disk may miss unflushed writes.", cfg.ShutdownTimeout))
		vm.Kill()
		return multistep.ActionContinue
	case <-ctx.Done():
		vm.Kill()
		return halt(state, ctx.Err())
	}
}

func (s *stepShutdown) Cleanup(multistep.StateBag) {}
