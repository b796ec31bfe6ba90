package cloudinitreset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// localComm is a packersdk.Communicator that runs commands with the local
// sh and writes uploads to local paths, with ROOT set to a guest root so
// that the scripts act on the throwaway guest. (The SDK's
// MockCommunicator keeps only the last command and upload, and runs
// nothing.) It records every command and upload.
type localComm struct {
	t    *testing.T
	root string

	mu       sync.Mutex
	commands []string
	uploads  map[string]string

	// before runs before a command whose text contains its key.
	before map[string]func()
	// disconnect: a command containing it reports CmdDisconnect; when
	// skip is also set, it does not run at all (the session died first).
	disconnect     string
	disconnectSkip bool
}

var _ packersdk.Communicator = (*localComm)(nil)

func newLocalComm(t *testing.T, root string) *localComm {
	return &localComm{t: t, root: root, uploads: map[string]string{}, before: map[string]func(){}}
}

func (c *localComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	c.mu.Lock()
	c.commands = append(c.commands, rc.Command)
	c.mu.Unlock()
	for key, f := range c.before {
		if strings.Contains(rc.Command, key) {
			f()
		}
	}
	disconnect := c.disconnect != "" && strings.Contains(rc.Command, c.disconnect)
	go func() {
		if disconnect && c.disconnectSkip {
			rc.SetExited(packersdk.CmdDisconnect)
			return
		}
		cmd := exec.Command("sh", "-c", rc.Command)
		cmd.Env = append(os.Environ(), "ROOT="+c.root)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = rc.Stdin, rc.Stdout, rc.Stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = 127
		}
		if disconnect {
			code = packersdk.CmdDisconnect
		}
		rc.SetExited(code)
	}()
	return nil
}

func (c *localComm) Upload(dst string, r io.Reader, _ *os.FileInfo) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.uploads[dst] = string(b)
	c.mu.Unlock()
	return os.WriteFile(dst, b, 0o644)
}

func (c *localComm) UploadDir(string, string, []string) error { return errors.New("not used") }
func (c *localComm) Download(string, io.Writer) error         { return errors.New("not used") }
func (c *localComm) DownloadDir(string, string, []string) error {
	return errors.New("not used")
}

// uploadNames lists the uploaded files by base name.
func (c *localComm) uploadNames() []string {
	var names []string
	for p := range c.uploads {
		names = append(names, filepath.Base(p))
	}
	slices.Sort(names)
	return names
}

// testUI captures everything said.
type testUI struct {
	packersdk.BasicUi
	buf *bytes.Buffer
}

func newTestUI() *testUI {
	var buf bytes.Buffer
	return &testUI{BasicUi: packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &buf, ErrorWriter: &buf, PB: &packersdk.NoopProgressTracker{}}, buf: &buf}
}

// provision prepares a provisioner with raw settings plus a test
// execute_command (sh, as the tests already run as the right user), and
// runs it against g.
func provision(t *testing.T, g *guest, comm *localComm, raw map[string]interface{}, data map[string]interface{}) (*testUI, error) {
	t.Helper()
	cfg := map[string]interface{}{
		"execute_command": "sh '{{.Path}}' # as root",
		"remote_folder":   g.path("/tmp"),
	}
	for k, v := range raw {
		cfg[k] = v
	}
	var p Provisioner
	if err := p.Prepare(cfg); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	ui := newTestUI()
	err := p.Provision(context.Background(), ui, comm, data)
	t.Logf("UI:\n%s", ui.buf.String())
	return ui, err
}

func readFacts(t *testing.T, path string) (map[string]interface{}, *Facts) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]interface{}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var f Facts
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return raw, &f
}

func TestProvision(t *testing.T) {
	g := newGuest(t)
	comm := newLocalComm(t, g.root)
	facts := filepath.Join(t.TempDir(), "facts.json")
	_, err := provision(t, g, comm, nil, map[string]interface{}{"User": "packer", "FactsFile": facts})
	if err != nil {
		t.Fatal(err)
	}

	// The commands: mktemp as the user, then the collect and the apply
	// script, each through execute_command.
	if len(comm.commands) != 3 {
		t.Fatalf("commands %q", comm.commands)
	}
	if !strings.HasPrefix(comm.commands[0], "mktemp -d '"+g.path("/tmp")+"/cloudimg-reset.") {
		t.Errorf("first command %q", comm.commands[0])
	}
	dir := strings.TrimSuffix(strings.TrimPrefix(comm.commands[1], "sh '"), "/collect.sh' # as root")
	if comm.commands[1] != "sh '"+dir+"/collect.sh' # as root" || comm.commands[2] != "sh '"+dir+"/apply.sh' # as root" {
		t.Errorf("the scripts did not run through execute_command: %q", comm.commands[1:])
	}
	// The new account files travel inside apply.sh: two uploads in all.
	if want := []string{"apply.sh", "collect.sh"}; !slices.Equal(comm.uploadNames(), want) {
		t.Errorf("uploads %v, want %v", comm.uploadNames(), want)
	}
	for p, content := range comm.uploads {
		if filepath.Dir(p) != dir {
			t.Errorf("upload %s outside the temporary directory %s", p, dir)
		}
		if filepath.Base(p) == "passwd" && strings.Contains(content, "packer") {
			t.Error("the uploaded passwd still names packer")
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the temporary directory %s is still there", dir)
	}

	// The guest.
	if strings.Contains(g.read("/etc/passwd"), "packer") || g.exists("/home/packer") || g.exists("/etc/sudoers.d/90-cloud-init-users") {
		t.Error("the build user is still in the guest")
	}

	// The facts.
	raw, f := readFacts(t, facts)
	for _, k := range []string{"os_release", "kernel", "cloud_init_version", "packages", "reset"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("facts lack %q", k)
		}
	}
	if f.OSRelease["ID"] != "debian" || f.OSRelease["VERSION_ID"] != "12" || f.OSRelease["PRETTY_NAME"] != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("os_release %v", f.OSRelease)
	}
	if f.Kernel == "" {
		t.Error("no kernel")
	}
	if !slices.Equal(f.Packages, []Package{{Name: "base-files", Version: "12.4+deb12u5", Architecture: "amd64", Source: "base-files", SourceVersion: "12.4+deb12u5"}}) {
		t.Errorf("packages %v", f.Packages)
	}
	r := f.Reset
	if r == nil || r.User != "packer" || r.RemovedGroup != "packer" || r.DryRun {
		t.Fatalf("reset %+v", r)
	}
	if !slices.Equal(r.ChangedFiles, []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/subuid", "/etc/subgid", "/etc/sudoers.d/90-cloud-init-users", "/etc/hostname", "/etc/hosts"}) {
		t.Errorf("changed_files %v", r.ChangedFiles)
	}
	if !slices.Contains(r.ChangedFiles, "/etc/shadow") || !slices.Contains(r.RemovedPaths, "/home/packer") || len(r.Messages) == 0 {
		t.Errorf("reset %+v", r)
	}
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("check %+v failed", c)
		}
	}
	if len(r.Checks) < 10 {
		t.Errorf("only %d checks", len(r.Checks))
	}
	if !slices.ContainsFunc(r.Checks, func(c Check) bool {
		return c.Name == "build-hostname" && c.OK && strings.Contains(c.Detail, "no file under /etc names packer-web")
	}) {
		t.Errorf("no passing build-hostname check: %+v", r.Checks)
	}
	if r.Hostname == nil || r.Hostname.Restore != RestoreSavedCopy || !slices.Equal(r.Hostname.BuildNames, []string{"packer-web"}) {
		t.Errorf("reset.hostname %+v", r.Hostname)
	}
	if g.read("/etc/hostname") != "localhost\n" || g.read("/etc/hosts") != sourceHosts {
		t.Errorf("/etc/hostname %q, /etc/hosts %q: not the source image's", g.read("/etc/hostname"), g.read("/etc/hosts"))
	}
	reset := raw["reset"].(map[string]interface{})
	for _, k := range []string{"user", "removed_group", "changed_files", "removed_paths", "messages", "checks", "dry_run", "hostname"} {
		if _, ok := reset[k]; !ok {
			t.Errorf("reset lacks %q", k)
		}
	}
}

func TestProvisionDryRun(t *testing.T) {
	g := newGuest(t)
	comm := newLocalComm(t, g.root)
	facts := filepath.Join(t.TempDir(), "sub", "facts.json")
	before := g.snapshot()
	ui, err := provision(t, g, comm, map[string]interface{}{"dry_run": true, "facts_file": facts},
		map[string]interface{}{"User": "packer", "FactsFile": "/nonexistent/ignored.json"})
	if err != nil {
		t.Fatal(err)
	}
	if after := g.snapshot(); after != before {
		t.Errorf("the dry run changed the guest:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	out := ui.buf.String()
	for _, want := range []string{
		"-packer:x:1000:1000::/home/packer:/bin/bash",
		"-packer:!:20783:0:99999:7:::",
		" ops:<hash>:20783:0:99999:7:::", // context lines too: never a hash in the log
		"--- /etc/sudoers.d/90-cloud-init-users",
		"WOULD-REMOVE /home/packer",
		"WOULD-CHANGE /etc/hostname\n",
		"WOULD-CHANGE /etc/hosts\n",
		"hostname: putting back the source image's /etc/hostname and /etc/hosts",
		"Dry run: nothing was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("UI lacks %q", want)
		}
	}
	if strings.Contains(out, "$y$") {
		t.Error("a password hash reached the UI")
	}
	_, f := readFacts(t, facts)
	if !f.Reset.DryRun || !slices.Contains(f.Reset.ChangedFiles, "/etc/passwd") || !slices.Contains(f.Reset.RemovedPaths, "/home/packer") {
		t.Errorf("reset %+v", f.Reset)
	}
	if n := len(comm.uploads); n != 2 {
		t.Errorf("%d uploads", n)
	}
}

// TestProvisionAbsentUser: a user that does not exist is a no-op for the
// accounts, with a message; the rest of the reset runs.
func TestProvisionAbsentUser(t *testing.T) {
	g := newGuest(t)
	passwd := g.read("/etc/passwd")
	ui, err := provision(t, g, newLocalComm(t, g.root), map[string]interface{}{"user": "ghost"}, map[string]interface{}{"User": "packer"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ui.buf.String(), "user ghost not present: nothing to remove") {
		t.Error("no message about the absent user")
	}
	if g.read("/etc/passwd") != passwd || g.exists("/var/lib/cloud/instance") {
		t.Error("accounts changed, or the cloud-init reset did not run")
	}
}

// TestProvisionHostnameFallback: without the seed's copy, the log shows
// what the fallback changes in /etc/hostname and /etc/hosts, and the
// report says which way was taken.
func TestProvisionHostnameFallback(t *testing.T) {
	g := newGuest(t)
	if err := os.RemoveAll(g.path(savedDir)); err != nil {
		t.Fatal(err)
	}
	facts := filepath.Join(t.TempDir(), "facts.json")
	ui, err := provision(t, g, newLocalComm(t, g.root), nil, map[string]interface{}{"User": "packer", "FactsFile": facts})
	if err != nil {
		t.Fatal(err)
	}
	out := ui.buf.String()
	for _, want := range []string{
		"--- /etc/hostname\n", "-packer-web\n",
		"--- /etc/hosts\n", "-127.0.1.1 packer-web packer-web\n",
		"hostname: no copy of the source image's /etc/hostname and /etc/hosts",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("UI lacks %q", want)
		}
	}
	_, f := readFacts(t, facts)
	if h := f.Reset.Hostname; h == nil || h.Restore != RestoreFallback || !slices.Equal(h.BuildNames, []string{"packer-web"}) {
		t.Errorf("reset.hostname %+v", h)
	}
	if !slices.ContainsFunc(f.Reset.Messages, func(m string) bool { return strings.HasPrefix(m, "hostname: no copy") }) {
		t.Errorf("messages %q", f.Reset.Messages)
	}
	if g.read("/etc/hostname") != "" {
		t.Errorf("/etc/hostname %q", g.read("/etc/hostname"))
	}
}

func TestProvisionErrors(t *testing.T) {
	t.Run("no user", func(t *testing.T) {
		g := newGuest(t)
		_, err := provision(t, g, newLocalComm(t, g.root), nil, map[string]interface{}{})
		if err == nil || !strings.Contains(err.Error(), "set user") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("root from the builder", func(t *testing.T) {
		g := newGuest(t)
		_, err := provision(t, g, newLocalComm(t, g.root), nil, map[string]interface{}{"User": "root"})
		if err == nil || !strings.Contains(err.Error(), "refusing to remove root") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("system account", func(t *testing.T) {
		g := newGuest(t)
		comm := newLocalComm(t, g.root)
		_, err := provision(t, g, comm, map[string]interface{}{"user": "sshd"}, map[string]interface{}{"User": "packer"})
		if err == nil || !strings.Contains(err.Error(), "system account") {
			t.Fatalf("err %v", err)
		}
		if len(comm.commands) != 3 || !strings.HasPrefix(comm.commands[2], "rm -rf ") {
			t.Errorf("the temporary directory was not cleaned up: %q", comm.commands)
		}
	})
	t.Run("changed before the apply", func(t *testing.T) {
		g := newGuest(t)
		comm := newLocalComm(t, g.root)
		comm.before["apply.sh"] = func() { g.write("/etc/shadow", g.read("/etc/shadow")+"x:!:1::::::\n", 0o640, 0, 42) }
		_, err := provision(t, g, comm, nil, map[string]interface{}{"User": "packer"})
		if err == nil || !strings.Contains(err.Error(), "aborted before changing anything: /etc/shadow changed since it was read") {
			t.Fatalf("err %v", err)
		}
		if !strings.Contains(g.read("/etc/passwd"), "packer:") {
			t.Error("passwd changed")
		}
	})
	t.Run("failed check", func(t *testing.T) {
		g := newGuest(t)
		g.write("/var/lib/dpkg/statoverride", "packer root 750 /opt/app\n", 0o644, 0, 0)
		facts := filepath.Join(t.TempDir(), "facts.json")
		_, err := provision(t, g, newLocalComm(t, g.root), nil, map[string]interface{}{"User": "packer", "FactsFile": facts})
		if err == nil || !strings.Contains(err.Error(), "dpkg-statoverride") {
			t.Fatalf("err %v", err)
		}
		_, f := readFacts(t, facts)
		if !slices.ContainsFunc(f.Reset.Checks, func(c Check) bool { return c.Name == "dpkg-statoverride" && !c.OK }) {
			t.Errorf("facts checks %+v", f.Reset.Checks)
		}
	})
	t.Run("disconnect after the report", func(t *testing.T) {
		g := newGuest(t)
		comm := newLocalComm(t, g.root)
		comm.disconnect = "apply.sh"
		ui, err := provision(t, g, comm, nil, map[string]interface{}{"User": "packer"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ui.buf.String(), "ended after the report") {
			t.Error("no word about the disconnect")
		}
	})
	t.Run("disconnect before the report", func(t *testing.T) {
		g := newGuest(t)
		comm := newLocalComm(t, g.root)
		comm.disconnect, comm.disconnectSkip = "apply.sh", true
		_, err := provision(t, g, comm, nil, map[string]interface{}{"User": "packer"})
		if err == nil || !strings.Contains(err.Error(), "ended before the report was complete") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("execute_command without root", func(t *testing.T) {
		g := newGuest(t)
		_, err := provision(t, g, newLocalComm(t, g.root), map[string]interface{}{"execute_command": "true '{{.Path}}'"}, map[string]interface{}{"User": "packer"})
		if err == nil || !strings.Contains(err.Error(), "no BEGIN marker") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("remote_folder in the home", func(t *testing.T) {
		g := newGuest(t)
		g.write("/etc/passwd", strings.Replace(g.read("/etc/passwd"), ":/home/packer:", ":"+g.path("/tmp")+":", 1), 0o644, 0, 0)
		_, err := provision(t, g, newLocalComm(t, g.root), nil, map[string]interface{}{"User": "packer"})
		if err == nil || !strings.Contains(err.Error(), "is inside the home") {
			t.Fatalf("err %v", err)
		}
	})
}
