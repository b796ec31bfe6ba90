package kvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/filelock"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepOutputDir makes output_directory and claims the image's name for this
// build. Several builds may share the directory (they differ by vm_name); the
// conflicts are an existing file of the image's name, which -force removes,
// and another running build of the same name (two sources without vm_name),
// which would share the build disk: the claim is a lock that the second
// build cannot take, held until this build's steps are cleaned up. It is
// also the owner record of the image's work files: with it taken, the step
// removes the work files of killed builds (see owner.go).
type stepOutputDir struct {
	created bool
	claim   *filelock.Flock
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
	claim, ok, err := claimImage(image)
	if err != nil {
		return halt(state, fmt.Errorf("claiming the image name %s: %w", image, err))
	} else if !ok {
		return halt(state, fmt.Errorf("another build is writing %s right now: give each source its own vm_name (or output_directory)", image))
	}
	s.claim = claim
	// Work files of killed builds (see owner.go); a running build's stay.
	removed, err := sweepOutputDir(cfg.OutputDir, cfg.VMName)
	if len(removed) > 0 {
		ui.Say(fmt.Sprintf("Removed the work files of a build that was killed, in %s: %s", cfg.OutputDir, strings.Join(removed, ", ")))
	}
	if err != nil {
		ui.Say(fmt.Sprintf("Warning: removing the work files of killed builds: %v", err))
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
// failed or cancelled build left it empty, then gives up the name's claim.
func (s *stepOutputDir) Cleanup(state multistep.StateBag) {
	if s.claim != nil {
		defer s.claim.Unlock()
	}
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
