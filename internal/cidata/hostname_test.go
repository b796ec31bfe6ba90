package cidata

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// TestHostnameInUserData: the build's hostname is in user-data (hostname
// and fqdn), never in meta-data's local-hostname, and bootcmd starts with
// the entry that saves /etc/hostname and /etc/hosts.
func TestHostnameInUserData(t *testing.T) {
	for _, tc := range []struct {
		hostname            string
		wantShort, wantFQDN any
	}{
		{"packer-web", "packer-web", "packer-web"},
		{"build.example.org", "build", "build.example.org"},
		{"", nil, nil},
	} {
		t.Run(tc.hostname, func(t *testing.T) {
			c := baseConfig()
			c.Hostname = tc.hostname
			s := mustBuild(t, c)
			if bytes.Contains(s.MetaData, []byte("hostname")) {
				t.Errorf("meta-data names a hostname:\n%s", s.MetaData)
			}
			m := decodeUserData(t, s.UserData)
			if m["hostname"] != tc.wantShort || m["fqdn"] != tc.wantFQDN {
				t.Errorf("hostname %#v fqdn %#v, want %#v %#v", m["hostname"], m["fqdn"], tc.wantShort, tc.wantFQDN)
			}
			if !reflect.DeepEqual(m["bootcmd"], []any{saveEtcScript}) {
				t.Errorf("bootcmd = %#v", m["bootcmd"])
			}
			if _, ok := m["preserve_hostname"]; ok {
				t.Error("preserve_hostname set")
			}
		})
	}
}

// TestHostnameMerge: the user's bootcmd entries run after ours; a hostname
// or fqdn of the user's replaces both of ours.
func TestHostnameMerge(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		want         map[string]any // keys that must have these values (nil: absent)
		bootcmdAfter []any          // the user's entries, after ours
	}{
		{name: "user bootcmd kept after ours", in: "#cloud-config\nbootcmd:\n  - echo early > /dev/console\n  - [cloud-init-per, once, x, touch, /x]\n",
			want:         map[string]any{"hostname": "packer-web", "fqdn": "packer-web"},
			bootcmdAfter: []any{"echo early > /dev/console", []any{"cloud-init-per", "once", "x", "touch", "/x"}}},
		{name: "user hostname wins", in: "#cloud-config\nhostname: k8s-node\n",
			want: map[string]any{"hostname": "k8s-node", "fqdn": nil}},
		{name: "user fqdn wins", in: "#cloud-config\nfqdn: node1.example.org\n",
			want: map[string]any{"hostname": nil, "fqdn": "node1.example.org"}},
		{name: "user hostname and fqdn", in: "#cloud-config\nfqdn: node1.example.org\nhostname: node1\n",
			want: map[string]any{"hostname": "node1", "fqdn": "node1.example.org"}},
		{name: "null hostname ignored", in: "#cloud-config\nhostname:\nfqdn: ~\nbootcmd:\n",
			want: map[string]any{"hostname": "packer-web", "fqdn": "packer-web"}},
		{name: "preserve_hostname passed on", in: "#cloud-config\npreserve_hostname: true\nprefer_fqdn_over_hostname: true\n",
			want: map[string]any{"hostname": "packer-web", "fqdn": "packer-web", "preserve_hostname": true, "prefer_fqdn_over_hostname": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig()
			c.UserData = []byte(tc.in)
			m := decodeUserData(t, mustBuild(t, c).UserData)
			for k, v := range tc.want {
				if got, ok := m[k]; v == nil && ok || v != nil && got != v {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
			}
			want := append([]any{saveEtcScript}, tc.bootcmdAfter...)
			if !reflect.DeepEqual(m["bootcmd"], want) {
				t.Errorf("bootcmd = %#v\nwant %#v", m["bootcmd"], want)
			}
		})
	}
	c := baseConfig()
	c.UserData = []byte("#cloud-config\nbootcmd: echo hi\n")
	c.UserDataName = "user_data"
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "line 2: bootcmd must be a list") || !strings.Contains(err.Error(), "user_data") {
		t.Errorf("a bootcmd string: error %v", err)
	}
}

// TestMetaDataLocalHostnameRefused: an extra meta-data local-hostname
// would name the build host before the bootcmd entry runs.
func TestMetaDataLocalHostnameRefused(t *testing.T) {
	c := baseConfig()
	c.MetaData = map[string]string{"local-hostname": "x"}
	if _, err := Build(c); err == nil || !strings.Contains(err.Error(), "set the hostname instead") {
		t.Errorf("error %v", err)
	}
}

// TestSaveEtcScript runs the bootcmd entry, with its paths moved below a
// temporary root, the way cloud-init runs bootcmd (sh on a script file),
// on a first boot and on a later one.
func TestSaveEtcScript(t *testing.T) {
	for _, sh := range []string{"dash", "bash", "busybox"} {
		shell, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		t.Run(sh, func(t *testing.T) {
			root := t.TempDir()
			etc, saved := filepath.Join(root, "etc"), filepath.Join(root, strings.TrimPrefix(SavedEtcDir, "/"))
			for _, d := range []string{etc, filepath.Dir(saved)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			script := strings.ReplaceAll(saveEtcScript, SavedEtcDir, saved)
			script = strings.ReplaceAll(script, `"/etc/`, `"`+etc+`/`)
			if script == saveEtcScript || strings.Contains(script, `"/etc/`) || strings.Contains(script, " /var/lib/cloud") {
				t.Fatalf("the paths were not all moved:\n%s", script)
			}
			p := filepath.Join(root, "bootcmd")
			// As cloud-init's util.shellify writes it, with a user entry after.
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"echo user-entry \"$t\" $#\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			run := func() string {
				t.Helper()
				args := []string{p}
				if sh == "busybox" {
					args = []string{"sh", p}
				}
				out, err := exec.Command(shell, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				return string(out)
			}
			if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o604); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(etc, "hosts"), 0o604); err != nil {
				t.Fatal(err)
			}
			if os.Geteuid() == 0 {
				if err := os.Chown(filepath.Join(etc, "hosts"), 0, 4); err != nil {
					t.Fatal(err)
				}
			}

			// First boot: /etc/hostname is missing, /etc/hosts is saved.
			if out := run(); out != "user-entry  0\n" {
				t.Errorf("the user's entry saw %q: the save entry leaks variables", out)
			}
			b, err := os.ReadFile(filepath.Join(saved, "hosts"))
			if err != nil || string(b) != "127.0.0.1 localhost\n" {
				t.Fatalf("saved hosts %q, %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(saved, "hosts"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o604 {
				t.Errorf("saved hosts has mode %v, want 0604", fi.Mode().Perm())
			}
			if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && st.Gid != 4 {
				t.Errorf("saved hosts has group %d, want 4", st.Gid)
			}
			if _, err := os.Stat(filepath.Join(saved, "hostname.absent")); err != nil {
				t.Errorf("no hostname.absent: %v", err)
			}
			if _, err := os.Stat(saved + ".tmp"); err == nil {
				t.Error("the temporary directory is left")
			}
			if fi, err := os.Stat(saved); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("saved directory: %v %v", fi, err)
			}

			// A later boot, after cloud-init set the build's hostname: the
			// copy stays the source image's.
			for _, f := range []string{"hostname", "hosts"} {
				if err := os.WriteFile(filepath.Join(etc, f), []byte("packer-web\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run()
			if b, _ := os.ReadFile(filepath.Join(saved, "hosts")); string(b) != "127.0.0.1 localhost\n" {
				t.Errorf("a later boot replaced the saved hosts: %q", b)
			}
			if _, err := os.Stat(filepath.Join(saved, "hostname")); err == nil {
				t.Error("a later boot saved hostname")
			}
		})
	}
}
