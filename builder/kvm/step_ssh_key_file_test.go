package kvm

import (
	"context"
	"os"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
)

// The provisioners' connection data names a key file of the build's own
// (so the Ansible provisioner writes none), readable only by the user, and
// gone after cleanup.
func TestSSHKeyFileForProvisioners(t *testing.T) {
	cfg := &Config{}
	cfg.Comm = communicator.Config{Type: "ssh", SSH: communicator.SSH{SSHPrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n")}}
	state := stepState(t, cfg, &fakeDriver{})
	state.Put("temp_dir", t.TempDir())
	state.Put("communicator_config", &cfg.Comm)
	s := &stepSSHKeyFile{}
	if a := s.Run(context.Background(), state); a != multistep.ActionContinue {
		t.Fatal(state.Get("error"))
	}
	hook := commonsteps.PopulateProvisionHookData(state)
	path, _ := hook["SSHPrivateKeyFile"].(string)
	if path == "" {
		t.Fatalf("no SSHPrivateKeyFile in the provision hook data: %v", hook)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != string(cfg.Comm.SSHPrivateKey) {
		t.Errorf("key file %s: %q, %v; want the build's key", path, b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v, %v; want 0600", fi, err)
	}
	if cfg.Comm.SSHPrivateKeyFile != "" {
		t.Error("the step changed the template's configuration instead of a copy")
	}
	s.Cleanup(state)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("key file left after cleanup: %v", err)
	}
}

func TestSSHKeyFileLeavesTheTemplatesKeyAlone(t *testing.T) {
	cfg := &Config{}
	cfg.Comm = communicator.Config{Type: "ssh", SSH: communicator.SSH{SSHPrivateKey: []byte("k"), SSHPrivateKeyFile: "/home/me/.ssh/id_ed25519"}}
	state := stepState(t, cfg, &fakeDriver{})
	dir := t.TempDir()
	state.Put("temp_dir", dir)
	state.Put("communicator_config", &cfg.Comm)
	(&stepSSHKeyFile{}).Run(context.Background(), state)
	if got := commonsteps.PopulateProvisionHookData(state)["SSHPrivateKeyFile"]; got != "/home/me/.ssh/id_ed25519" {
		t.Errorf("SSHPrivateKeyFile %v, want the template's own", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a key file was written although the template gives one: %v", ents)
	}
}
