package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// sshKeyFileName is the build's private key file in its temporary directory.
const sshKeyFileName = "ssh-key"

// stepSSHKeyFile writes the build's ephemeral SSH private key to a file of
// its own in the build's temporary directory (mode 0600) and names that file
// as SSHPrivateKeyFile in the connection data Packer gives the provisioners.
// A provisioner that needs the key as a file then uses this one: the Ansible
// provisioner (v1.0.3) with use_proxy = false otherwise writes the key to
// ansible-key* in the system's temporary directory and never removes it.
// Cleanup removes the file. Nothing is done when the template gives its own
// key file (ssh_private_key_file) or uses the SSH agent.
//
// Uses: config, temp_dir (stepPrepare), communicator_config (StepConnect).
// Produces: communicator_config (a copy naming the file; read by the SDK's
// StepProvision for the provisioners' connection data).
type stepSSHKeyFile struct {
	path string
}

func (s *stepSSHKeyFile) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	if cfg.Comm.SSHPrivateKeyFile != "" || cfg.Comm.SSHAgentAuth || len(cfg.Comm.SSHPrivateKey) == 0 {
		return multistep.ActionContinue
	}
	path := filepath.Join(state.Get("temp_dir").(string), sshKeyFileName)
	if err := os.WriteFile(path, cfg.Comm.SSHPrivateKey, 0o600); err != nil {
		return halt(state, fmt.Errorf("writing the build's SSH key for the provisioners: %w", err))
	}
	s.path = path
	comm := cfg.Comm
	if c, ok := state.GetOk("communicator_config"); ok {
		comm = *c.(*communicator.Config)
	}
	comm.SSHPrivateKeyFile = path
	state.Put("communicator_config", &comm)
	return multistep.ActionContinue
}

func (s *stepSSHKeyFile) Cleanup(multistep.StateBag) {
	if s.path != "" {
		os.Remove(s.path)
	}
}
