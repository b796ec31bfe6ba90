package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepEFIVars prepares the UEFI firmware files of a build with firmware =
// "uefi": a fresh copy of the variables template (efi_firmware_vars), padded
// to the machine's flash size, as a work file beside the image
// (.NAME.efivars.building, see owner.go), and, when the code file is shorter
// than the flash (e.g. Debian's 2 MiB QEMU_EFI.fd), a padded copy of it in
// the build's temporary directory. stepConvert moves the variables beside
// the image as <vm_name>.efivars.fd; Cleanup removes the work file when the
// build did not get that far. Nothing is done for BIOS builds.
//
// Uses: config, image_path (stepOutputDir), temp_dir (stepPrepare).
// Produces: efivars_work (read by qemuArgs and stepConvert), efi_code (the
// code file QEMU reads; read by qemuArgs).
type stepEFIVars struct {
	work string
}

func (s *stepEFIVars) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	if cfg.Firmware != "uefi" {
		return multistep.ActionContinue
	}
	profile := machineProfiles[cfg.Arch]
	work := workFile(state.Get("image_path").(string), efivarsSuffix)
	s.work = work
	if err := padFirmware(cfg.EFIFirmwareVars, work, profile.PflashSize); err != nil {
		return halt(state, fmt.Errorf("efi_firmware_vars: copying the UEFI variables: %w", err))
	}
	state.Put("efivars_work", work)
	code := cfg.EFIFirmwareCode
	if short, err := needsPadding(code, profile.PflashSize); err != nil {
		return halt(state, fmt.Errorf("efi_firmware_code: %w", err))
	} else if short {
		code = filepath.Join(state.Get("temp_dir").(string), "efi-code.fd")
		if err := padFirmware(cfg.EFIFirmwareCode, code, profile.PflashSize); err != nil {
			return halt(state, fmt.Errorf("efi_firmware_code: %w", err))
		}
	}
	state.Put("efi_code", code)
	return multistep.ActionContinue
}

// Cleanup removes the variables' work file; after stepConvert moved it into
// place there is nothing at that name any more. (The padded code copy goes
// with the temporary directory.)
func (s *stepEFIVars) Cleanup(multistep.StateBag) {
	if s.work != "" {
		_ = os.Remove(s.work)
	}
}
