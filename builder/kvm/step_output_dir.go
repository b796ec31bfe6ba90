package kvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepOutputDir makes output_directory. Several builds may share it (they
// differ by vm_name); the conflict is an existing file of the image's name,
// which -force removes.
type stepOutputDir struct {
	created bool
}

func (s *stepOutputDir) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	image := filepath.Join(cfg.OutputDir, cfg.VMName)
	state.Put("image_path", image)

	if _, err := os.Stat(cfg.OutputDir); errors.Is(err, fs.ErrNotExist) {
		s.created = true
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return halt(state, fmt.Errorf("output_directory: %w", err))
	}
	if _, err := os.Lstat(image); err == nil {
		if !cfg.PackerForce {
			return halt(state, fmt.Errorf("output file %s already exists: remove it, choose another vm_name or output_directory, or build with -force", image))
		}
		ui.Say("Deleting previous image (-force): " + image)
		if err := os.Remove(image); err != nil {
			return halt(state, fmt.Errorf("removing previous image: %w", err))
		}
	}
	return multistep.ActionContinue
}

// Cleanup removes the output directory if this build created it and a
// failed or cancelled build left it empty.
func (s *stepOutputDir) Cleanup(state multistep.StateBag) {
	if !s.created {
		return
	}
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	if cancelled || halted {
		cfg := state.Get("config").(*Config)
		_ = os.Remove(cfg.OutputDir) // only succeeds when empty
	}
}
