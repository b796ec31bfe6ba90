package cloudinitreset

import (
	"flag"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixtureFiles reads the Debian 12 account files of testdata and their
// sha256 the way the collect script reports them.
func fixtureFiles(t *testing.T) (accounts.Files, map[string]string) {
	t.Helper()
	rd := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "debian12", "etc", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := accounts.Files{
		Passwd: rd("passwd"), Shadow: rd("shadow"), Group: rd("group"), Gshadow: rd("gshadow"),
		Subuid: rd("subuid"), Subgid: rd("subgid"), LoginDefs: rd("login.defs"),
		Sudoers: map[string][]byte{
			"90-cloud-init-users": rd("sudoers.d/90-cloud-init-users"),
			"README":              rd("sudoers.d/README"),
		},
	}
	sums := map[string]string{}
	for name, b := range map[string][]byte{"passwd": f.Passwd, "shadow": f.Shadow, "group": f.Group, "gshadow": f.Gshadow, "subuid": f.Subuid, "subgid": f.Subgid, "login.defs": f.LoginDefs} {
		sums["/etc/"+name] = sha256Hex(b)
	}
	for name, b := range f.Sudoers {
		sums["/etc/sudoers.d/"+name] = sha256Hex(b)
	}
	return f, sums
}

// fixtureHostname plans the hostname reset for a guest built as
// packer-web, with the seed's copy of the source image's files (saved) or
// without.
func fixtureHostname(t *testing.T, saved bool) *HostnamePlan {
	t.Helper()
	c := &Collected{SHA256: map[string]string{}, contents: map[string][]byte{}, KernelHostname: "packer-web"}
	c.Facts.OSRelease = map[string]string{"ID": "debian"}
	put := func(p, content string) {
		c.contents[p] = []byte(content)
		c.SHA256[p] = sha256Hex([]byte(content))
	}
	put("/etc/hostname", "packer-web\n")
	put("/etc/hosts", buildHosts)
	put("/var/lib/cloud/data/set-hostname", `{"fqdn": "packer-web.example.org", "hostname": "packer-web"}`)
	if saved {
		put(savedDir+"/hostname", "localhost\n")
		put(savedDir+"/hosts", sourceHosts)
	}
	return PlanHostname(c)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", p, got)
	}
}

// TestApplyGolden pins the generated plans: any change to them shows up
// in review as a diff of testdata/golden. (The library they run with,
// reset.sh, is checked in as it is.)
func TestApplyGolden(t *testing.T) {
	files, sums := fixtureFiles(t)
	plan, err := accounts.RemoveUser(files, "packer")
	if err != nil {
		t.Fatal(err)
	}
	base := defaultOptions()
	base.NICMACs = []string{buildMAC}
	dry := base
	dry.DryRun = true
	all := ApplyOptions{
		Nonce: "n0nce", MachineID: MachineIDUninitialized, KeepPasswdBackups: true, RemoveCloudSeed: true,
		CleanApt: true, CleanJournal: true, ExtraPaths: []string{"/var/log/installer/*.log", "/srv/it's here"},
		ShutdownAfter: true, ShutdownDelay: 7 * time.Second, NICMACs: []string{buildMAC, "52:54:00:00:00:02"},
		Identity: []byte(`{"build_id": "b1", "source_name": "basic"}` + "\n"),
	}
	for _, tc := range []struct {
		name  string
		opts  ApplyOptions
		saved bool // the seed's copy of /etc/hostname and /etc/hosts is there
	}{
		{"apply-default.plan", base, true},
		{"apply-dry-run.plan", dry, true},
		{"apply-options.plan", all, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := fixtureHostname(t, tc.saved)
			s := maps.Clone(sums)
			maps.Copy(s, hostSums(host))
			b, err := BuildApply(plan, host, s, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Plan)
			if b.Script != Script(b.Plan) {
				t.Error("the script is not the library with the plan")
			}
			for _, sh := range []string{"dash", "bash"} {
				if p, err := exec.LookPath(sh); err == nil {
					if out, err := exec.Command(p, "-n", "-c", b.Script).CombinedOutput(); err != nil {
						t.Errorf("%s -n: %v\n%s", sh, err, out)
					}
				}
			}
			wantFiles := 6
			if !tc.saved {
				wantFiles++ // etc.hosts
			}
			if tc.opts.Identity != nil {
				wantFiles++ // image.json
				if string(b.Files["image.json"]) != string(tc.opts.Identity) {
					t.Errorf("bundle file image.json is %q, want the identity", b.Files["image.json"])
				}
			}
			if len(b.Files) != wantFiles {
				t.Errorf("files %v", b.Files)
			}
			for _, name := range accountFiles {
				want, _ := plan.File(name)
				if string(b.Files[name]) != string(want) {
					t.Errorf("bundle file %s is not the plan's", name)
				}
			}
		})
	}
	collectPlan, err := CollectPlan("n0nce")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "collect.plan", collectPlan)
}

func TestApplySudoersRewrite(t *testing.T) {
	files, sums := fixtureFiles(t)
	files.Sudoers["90-cloud-init-users"] = []byte("# Created by cloud-init v. 22.4.2\n\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n\n# User rules for admin\nadmin ALL=(ALL) ALL\n")
	sums["/etc/sudoers.d/90-cloud-init-users"] = sha256Hex(files.Sudoers["90-cloud-init-users"])
	plan, err := accounts.RemoveUser(files, "packer")
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildApply(plan, nil, sums, defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b.Files["sudoers.90-cloud-init-users"]); got != "# Created by cloud-init v. 22.4.2\n\n# User rules for admin\nadmin ALL=(ALL) ALL\n" {
		t.Errorf("new drop-in %q", got)
	}
	for _, want := range []string{
		"\nstage sudoers.90-cloud-init-users 0440 /etc/sudoers.d/90-cloud-init-users\n",
		"\nvisudo sudoers.90-cloud-init-users /etc/sudoers.d/90-cloud-init-users\n",
		"\ninstall /etc/sudoers.d/90-cloud-init-users\n",
	} {
		if !strings.Contains(b.Plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
}

func TestBuildApplyErrors(t *testing.T) {
	files, sums := fixtureFiles(t)
	plan, err := accounts.RemoveUser(files, "packer")
	if err != nil {
		t.Fatal(err)
	}
	bad := func(mod func(*ApplyOptions, map[string]string)) error {
		o := defaultOptions()
		s := map[string]string{}
		for k, v := range sums {
			s[k] = v
		}
		mod(&o, s)
		_, err := BuildApply(plan, nil, s, o)
		return err
	}
	for name, mod := range map[string]func(*ApplyOptions, map[string]string){
		"nonce":          func(o *ApplyOptions, _ map[string]string) { o.Nonce = "a b" },
		"machine id":     func(o *ApplyOptions, _ map[string]string) { o.MachineID = "" },
		"extra path":     func(o *ApplyOptions, _ map[string]string) { o.ExtraPaths = []string{"/etc"} },
		"missing sha":    func(_ *ApplyOptions, s map[string]string) { delete(s, "/etc/gshadow") },
		"shutdown delay": func(o *ApplyOptions, _ map[string]string) { o.ShutdownAfter, o.ShutdownDelay = true, 0 },
		"bad MAC":        func(o *ApplyOptions, _ map[string]string) { o.NICMACs = []string{"52:54:00:ab:cd:ef'"} },
		"uppercase MAC":  func(o *ApplyOptions, _ map[string]string) { o.NICMACs = []string{"52:54:00:AB:CD:EF"} },
	} {
		if err := bad(mod); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// hostSums are the sha256 sums a hostname plan expects.
func hostSums(h *HostnamePlan) map[string]string {
	m := map[string]string{}
	for _, f := range h.Files {
		if f.Saved != "" {
			m[f.Saved] = f.OldSHA
		}
	}
	return m
}

func TestBuildApplyHostnameErrors(t *testing.T) {
	files, sums := fixtureFiles(t)
	plan, err := accounts.RemoveUser(files, "packer")
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*HostnamePlan){
		"bad name":    func(h *HostnamePlan) { h.Names = []string{"a b"} },
		"quote":       func(h *HostnamePlan) { h.Names = []string{"a'b"} },
		"other file":  func(h *HostnamePlan) { h.Files[0].Path = "/etc/passwd" },
		"other saved": func(h *HostnamePlan) { h.Files[0].Saved = "/tmp/hostname" },
		"wrong saved": func(h *HostnamePlan) { h.Files[0].Saved = savedDir + "/hosts" },
		"bad action":  func(h *HostnamePlan) { h.Files[0].Action = "nuke" },
	} {
		h := fixtureHostname(t, true)
		mod(h)
		if _, err := BuildApply(plan, h, sums, defaultOptions()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRemovableHome(t *testing.T) {
	for _, tc := range []struct {
		home, want string
		why        bool
	}{
		{"/home/packer", "/home/packer", false},
		{"/home/packer/", "/home/packer", false},
		{"/", "", true},
		{"/home", "", true},
		{"/var/lib/../lib", "", true},
		{"relative", "", true},
	} {
		got, why := removableHome(&accounts.Plan{User: "u", Present: true, Home: tc.home})
		if got != tc.want || (why != "") != tc.why {
			t.Errorf("%q: got %q, %q", tc.home, got, why)
		}
	}
	if got, why := removableHome(&accounts.Plan{User: "u", Home: "/home/u"}); got != "" || why != "" {
		t.Errorf("absent user: %q %q", got, why)
	}
}

func TestMaskSecrets(t *testing.T) {
	in := "root:*:1::::::\nops:$y$j9T$abc$def:2:0:99999:7:::\nlocked:!$6$salt$hash:3::::::\nnopw::4::::::\nbang:!:5::::::\n# comment:$6$x:\nshort"
	want := "root:*:1::::::\nops:<hash>:2:0:99999:7:::\nlocked:!<hash>:3::::::\nnopw::4::::::\nbang:!:5::::::\n# comment:$6$x:\nshort"
	if got := string(maskSecrets("shadow", []byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(maskSecrets("passwd", []byte(in))); got != in {
		t.Error("passwd was masked")
	}
	if maskSecrets("shadow", nil) != nil {
		t.Error("nil is not nil")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"": "''", "a b": "'a b'", "it's": `'it'\''s'`, "$x`y`": "'$x`y`'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("%q: %s", in, got)
		}
		if out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(in)).Output(); err != nil || string(out) != in {
			t.Errorf("%q round trip: %q %v", in, out, err)
		}
	}
}
