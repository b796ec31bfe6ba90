package kvm

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/filelock"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// stepPrepare makes the build's private temporary directory (seed, QMP
// socket, serial log, guest facts) with its owner record, after removing
// those of killed builds (see owner.go), and publishes the build variables.
//
// Uses: config, ui (Run); temp_dir (Cleanup).
// Produces: temp_dir (stepSeed, stepEFIVars, stepSSHKeyFile, stepRun: the QMP
// socket), serial_log (stepRun, stepWaitSSH), facts_file (stepCollectFacts),
// error (on failure: Run).
type stepPrepare struct {
	owner *filelock.Flock
}

func (s *stepPrepare) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	removed, err := sweepTempDirs("")
	for _, d := range removed {
		ui.Say("Removed the temporary directory left by a build that was killed or aborted: " + d)
	}
	if err != nil {
		ui.Say(fmt.Sprintf("Warning: removing the temporary directories of killed builds: %v", err))
	}
	// Their lock files (and those of builds before locks were removed on
	// release): nothing to say about them, they are empty.
	if n, err := sweepLockFiles(); err != nil {
		ui.Say(fmt.Sprintf("Warning: removing the lock files of killed builds: %v", err))
	} else if n > 0 {
		log.Printf("removed %d lock files of killed builds from %s", n, os.TempDir())
	}
	// A short path: the QMP unix socket lives here (108-byte limit).
	dir, owner, err := makeTempDir("")
	if err != nil {
		return halt(state, fmt.Errorf("creating a temporary directory: %w", err))
	}
	s.owner = owner
	state.Put("temp_dir", dir)

	serial := filepath.Join(dir, "serial.log")
	if cfg.SerialLogFile != "" {
		serial = cfg.SerialLogFile
	}
	state.Put("serial_log", serial)

	facts := filepath.Join(dir, "guest-facts.json")
	state.Put("facts_file", facts)

	gd := &packerbuilderdata.GeneratedData{State: state}
	gd.Put("FactsFile", facts)
	gd.Put("SourceImageURL", cfg.ISOUrls[0])
	gd.Put("SourceImageChecksum", cfg.ISOChecksum)
	return multistep.ActionContinue
}

func (s *stepPrepare) Cleanup(state multistep.StateBag) {
	if dir, ok := state.GetOk("temp_dir"); ok {
		os.RemoveAll(dir.(string))
	}
	if s.owner != nil {
		s.owner.Unlock()
	}
}

// halt records err for the builder, shows it and stops the step chain.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put("error", err)
	return multistep.ActionHalt
}
