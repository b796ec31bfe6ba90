package kvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/lockfile"
)

// stepOutputDir makes output_directory and claims the image's name for this
// build. Several builds may share the directory (they differ by vm_name); the
// conflicts are an existing file of the image's name, which -force removes,
// and another running build of the same name (two sources without vm_name),
// which would share the build disk: the claim is a lock that the second
// build cannot take, held until this build's steps are cleaned up. It is
// also the owner record of the image's work files: with it taken, the step
// removes the work files of killed builds (see owner.go).
//
// The directory itself is shared: each build holds a shared lock on it (see
// dirLockPath) from before it makes the directory until its cleanup, and a
// failed build that made it removes it (when empty) only with that lock
// taken exclusively, i.e. when no other build uses it. A build refused the
// image's name never makes the directory.
//
// Uses: config, ui.
// Produces: image_path (stepCreateDisk, stepEFIVars, stepConvert, Run: the
// artifact).
type stepOutputDir struct {
	created bool
	claim   *lockfile.Lock
	dirLock *lockfile.Lock
}

func (s *stepOutputDir) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	image := filepath.Join(cfg.OutputDir, cfg.VMName)
	state.Put("image_path", image)

	dirLock, err := lockfile.RLock(dirLockPath(cfg.OutputDir))
	if err != nil {
		return halt(state, fmt.Errorf("output_directory: locking %s: %w", dirLockPath(cfg.OutputDir), err))
	}
	s.dirLock = dirLock
	claim, ok, err := claimImage(image)
	if err != nil {
		return halt(state, fmt.Errorf("claiming the image name %s: %w", image, err))
	} else if !ok {
		return halt(state, fmt.Errorf("another build is writing %s right now: give each source its own vm_name (or output_directory)", image))
	}
	s.claim = claim
	if _, err := os.Stat(cfg.OutputDir); errors.Is(err, fs.ErrNotExist) {
		s.created = true
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return halt(state, fmt.Errorf("output_directory: %w", err))
	}
	// Work files of killed builds (see owner.go); a running build's stay.
	removed, err := sweepOutputDir(cfg.OutputDir, cfg.VMName)
	if len(removed) > 0 {
		ui.Say(fmt.Sprintf("Removed the work files left by a build that was killed or aborted, in %s: %s", cfg.OutputDir, strings.Join(removed, ", ")))
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

// Cleanup removes the output directory if this build created it, a failed
// or cancelled build left it empty and no other build uses it, then gives
// up the name's claim.
func (s *stepOutputDir) Cleanup(state multistep.StateBag) {
	if s.claim != nil {
		defer s.claim.Unlock()
	}
	if s.dirLock == nil {
		return
	}
	defer s.dirLock.Unlock()
	if !s.created {
		return
	}
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, halted := state.GetOk(multistep.StateHalted)
	if cancelled || halted {
		cfg := state.Get("config").(*Config)
		// From shared to exclusive, without waiting: another build that
		// holds it shared uses the directory.
		path := s.dirLock.Path()
		_ = s.dirLock.Unlock()
		if l, ok, err := lockfile.TryLock(path); err == nil && ok {
			_ = os.Remove(cfg.OutputDir) // only succeeds when empty
			_ = l.Unlock()
		}
	}
}
