package cloudinitreset

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

func TestPrepareDefaults(t *testing.T) {
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{}); err != nil {
		t.Fatal(err)
	}
	c := p.config
	if c.ExecuteCommand != DefaultExecuteCommand || c.RemoteFolder != "/tmp" || c.MachineID != "empty" || c.ShutdownDelay != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	o := c.applyOptions("x")
	if !o.RemoveSSHHostKeys || !o.RemoveRandomSeed || !o.RemoveDHCPLeases || !o.CleanTmp || !o.RemoveShellHistory {
		t.Errorf("default-true options: %+v", o)
	}
	if o.CleanApt || o.CleanJournal || o.KeepPasswdBackups || o.RemoveCloudSeed || o.DryRun || o.ShutdownAfter {
		t.Errorf("default-false options: %+v", o)
	}
}

func TestPrepareTrileans(t *testing.T) {
	var p Provisioner
	err := p.Prepare(map[string]interface{}{
		"remove_ssh_host_keys": false, "remove_random_seed": "false", "remove_dhcp_leases": true,
		"clean_tmp": false, "remove_shell_history": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.config.RemoveRandomSeed != config.TriFalse || p.config.RemoveDHCPLeases != config.TriTrue {
		t.Errorf("%+v", p.config)
	}
	o := p.config.applyOptions("x")
	if o.RemoveSSHHostKeys || o.RemoveRandomSeed || !o.RemoveDHCPLeases || o.CleanTmp || o.RemoveShellHistory {
		t.Errorf("options: %+v", o)
	}
}

func TestPrepareValidation(t *testing.T) {
	cases := []struct {
		name string
		raw  map[string]interface{}
		want []string // substrings of the error; none: valid
	}{
		{"empty", map[string]interface{}{}, nil},
		{"all set", map[string]interface{}{
			"user": "ubuntu", "execute_command": "echo pw | sudo -S sh '{{.Path}}' # {{.User}}", "remote_folder": "/var/tmp",
			"keep_passwd_backups": true, "machine_id": "uninitialized", "remove_cloud_seed": true,
			"clean_apt": true, "clean_journal": true, "extra_paths": []string{"/var/log/installer", "/opt/app/cache/*", "/tmp/*"},
			"facts_file": "facts.json", "dry_run": true, "shutdown_after": true, "shutdown_delay": "10s",
		}, nil},
		{"root", map[string]interface{}{"user": "root"}, []string{"user: refusing to remove root"}},
		{"invalid user", map[string]interface{}{"user": "Bad User"}, []string{"user:", "invalid user name"}},
		{"long user", map[string]interface{}{"user": strings.Repeat("a", 33)}, []string{"user:", "longer than 32"}},
		{"machine_id", map[string]interface{}{"machine_id": "remove"}, []string{`machine_id: unknown value "remove"; allowed: "empty", "uninitialized"`}},
		{"execute_command without path", map[string]interface{}{"execute_command": "sudo sh /tmp/x"}, []string{"execute_command:", "{{.Path}}"}},
		{"execute_command syntax", map[string]interface{}{"execute_command": "sudo sh {{.Path"}, []string{"execute_command"}},
		{"remote_folder relative", map[string]interface{}{"remote_folder": "tmp"}, []string{"remote_folder:", "not an absolute path"}},
		{"extra relative", map[string]interface{}{"extra_paths": []string{"/ok", "var/x"}}, []string{"extra_paths[1]:", "not an absolute path"}},
		{"extra dotdot", map[string]interface{}{"extra_paths": []string{"/var/lib/../../etc"}}, []string{"extra_paths[0]:", `".."`}},
		{"extra root", map[string]interface{}{"extra_paths": []string{"/"}}, []string{"extra_paths[0]:", "refusing to remove /"}},
		{"extra etc", map[string]interface{}{"extra_paths": []string{"/etc/"}}, []string{"extra_paths[0]:", "refusing to remove /etc"}},
		{"extra vital list", map[string]interface{}{"extra_paths": []string{"/usr", "/bin", "/boot", "/var", "/home"}},
			[]string{"extra_paths[0]:", "extra_paths[1]:", "extra_paths[2]:", "extra_paths[3]:", "extra_paths[4]:"}},
		{"extra glob top", map[string]interface{}{"extra_paths": []string{"/e*"}}, []string{"extra_paths[0]:", "directly below /"}},
		{"extra glob vital", map[string]interface{}{"extra_paths": []string{"/etc/*"}}, []string{"extra_paths[0]:", "would empty /etc"}},
		{"extra glob middle", map[string]interface{}{"extra_paths": []string{"/home/*/cache"}}, []string{"extra_paths[0]:", "last path component"}},
		{"extra empty", map[string]interface{}{"extra_paths": []string{""}}, []string{"extra_paths[0]: empty path"}},
		{"shutdown_delay short", map[string]interface{}{"shutdown_delay": "500ms"}, []string{"shutdown_delay:", "shorter than 1s"}},
		{"shutdown_delay fraction", map[string]interface{}{"shutdown_delay": "1500ms"}, []string{"shutdown_delay:", "whole number of seconds"}},
		{"unknown option", map[string]interface{}{"bogus_option": 1}, []string{"bogus_option"}},
		{"wrong type", map[string]interface{}{"extra_paths": "/var/x"}, nil}, // mapstructure accepts a single string
		{"several", map[string]interface{}{"machine_id": "x", "user": "root"}, []string{"machine_id:", "user:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Provisioner
			err := p.Prepare(tc.raw)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRenderExecuteCommand(t *testing.T) {
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"execute_command": "sudo -u root -n sh '{{.Path}}' {{.User}}"}); err != nil {
		t.Fatal(err)
	}
	got, err := renderExecuteCommand(p.config.ExecuteCommand, &p.config.ctx, "/tmp/d/apply.sh", map[string]interface{}{"User": "packer"})
	if err != nil {
		t.Fatal(err)
	}
	if got != "sudo -u root -n sh '/tmp/d/apply.sh' packer" {
		t.Errorf("got %q", got)
	}
}
