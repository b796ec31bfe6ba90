package kvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/filelock"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepOutputDir makes output_directory and claims the image's name for this
// build. Several builds may share the directory (they differ by vm_name); the
// conflicts are an existing file of the image's name, which -force removes,
// and another running build of the same name (two sources without vm_name),
// which would share the build disk: the claim is a lock that the second
// build cannot take, held until this build's steps are cleaned up.
type stepOutputDir struct {
	created bool
	claim   *filelock.Flock
}

// claimPath is the lock file claiming image: in the temporary directory, like
// the SDK's port locks, so that output_directory holds nothing but outputs.
// It is never removed (removing a lock file lets a waiter lock an unlinked
// file while a newcomer locks a new one); the kernel releases the lock when
// the process dies.
func claimPath(image string) (string, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "packer-cloudimg-"+hex.EncodeToString(sum[:8])+".lock"), nil
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
	lock, err := claimPath(image)
	if err != nil {
		return halt(state, fmt.Errorf("output_directory: %w", err))
	}
	s.claim = filelock.New(lock)
	if ok, err := s.claim.TryLock(); err != nil {
		return halt(state, fmt.Errorf("claiming the image name %s (lock file %s): %w", image, lock, err))
	} else if !ok {
		return halt(state, fmt.Errorf("another build is writing %s right now: give each source its own vm_name (or output_directory)", image))
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
