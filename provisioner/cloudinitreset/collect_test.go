package cloudinitreset

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
)

// collectOutput builds collect output by hand.
func collectOutput(nonce string, files map[string]string, extra ...string) string {
	var sb strings.Builder
	sb.WriteString("sudo: unable to resolve host x\nBEGIN " + nonce + "\n")
	for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/os-release", "/etc/sudoers.d/90-cloud-init-users"} {
		c, ok := files[p]
		if !ok {
			sb.WriteString("NOFILE " + p + "\n")
			continue
		}
		enc := base64.StdEncoding.EncodeToString([]byte(c))
		sb.WriteString("FILE " + sha256Hex([]byte(c)) + " " + p + "\n")
		for len(enc) > 76 { // base64(1) wraps at 76
			sb.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		sb.WriteString(enc + "\nEND\n")
	}
	for _, l := range extra {
		sb.WriteString(l + "\n")
	}
	sb.WriteString("DONE " + nonce + "\ntrailing noise\n")
	return sb.String()
}

func TestParseCollect(t *testing.T) {
	passwd := strings.Repeat("user:x:1000:1000::/home/user:/bin/sh\n", 10)
	out := collectOutput("abc", map[string]string{
		"/etc/passwd":                        passwd,
		"/etc/shadow":                        "",
		"/etc/os-release":                    "ID=ubuntu\nVERSION_ID=\"24.04\"\n",
		"/etc/sudoers.d/90-cloud-init-users": "# User rules for user\nuser ALL=(ALL) NOPASSWD:ALL\n",
	},
		"FACT kernel 6.1.0-27-cloud-amd64",
		"FACT cloud-init /usr/bin/cloud-init 22.4.2",
		"PKG\tinstall ok installed\tzsh\t5.9-4",
		"PKG\tdeinstall ok config-files\told\t1",
		"PKG\thold ok installed\tbase-files\t12.4",
		"NOTE something",
	)
	// A pty turns \n into \r\n.
	for _, o := range []string{out, strings.ReplaceAll(out, "\n", "\r\n")} {
		c, err := ParseCollect([]byte(o), "abc")
		if err != nil {
			t.Fatal(err)
		}
		if string(c.Files.Passwd) != passwd || c.Files.Shadow == nil || len(c.Files.Shadow) != 0 || c.Files.Group != nil {
			t.Errorf("files %q %q %q", c.Files.Passwd, c.Files.Shadow, c.Files.Group)
		}
		if !c.Exists("/etc/shadow") || c.Exists("/etc/group") {
			t.Error("Exists")
		}
		if c.SHA256["/etc/passwd"] != sha256Hex([]byte(passwd)) {
			t.Error("sha")
		}
		if len(c.Files.Sudoers) != 1 || !strings.Contains(string(c.Files.Sudoers["90-cloud-init-users"]), "user ALL") {
			t.Errorf("sudoers %v", c.Files.Sudoers)
		}
		want := Facts{Facts: artifactstate.Facts{
			OSRelease:        map[string]string{"ID": "ubuntu", "VERSION_ID": "24.04"},
			Kernel:           "6.1.0-27-cloud-amd64",
			CloudInitVersion: "22.4.2",
			Packages:         []Package{{Name: "base-files", Version: "12.4"}, {Name: "zsh", Version: "5.9-4"}},
		}}
		if !reflect.DeepEqual(c.Facts, want) {
			t.Errorf("facts %+v", c.Facts)
		}
		if !reflect.DeepEqual(c.Notes, []string{"something"}) {
			t.Errorf("notes %v", c.Notes)
		}
	}
}

// Where dpkg lists cloud-init, its version comes from there (the collect
// script does not start cloud-init): the upstream part, as
// `cloud-init --version` prints it.
func TestCloudInitVersionFromPackages(t *testing.T) {
	for pkg, want := range map[string]string{
		"22.4.2-1+deb12u1":        "22.4.2",
		"24.4.1-0ubuntu0~24.04.3": "24.4.1",
		"1:25.1-1":                "25.1",
		"23.1":                    "23.1",
	} {
		out := collectOutput("abc", map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
			"PKG\tinstall ok installed\tcloud-init\t"+pkg)
		c, err := ParseCollect([]byte(out), "abc")
		if err != nil {
			t.Fatal(err)
		}
		if c.Facts.CloudInitVersion != want {
			t.Errorf("package version %s: cloud-init version %q, want %q", pkg, c.Facts.CloudInitVersion, want)
		}
	}
}

func TestParseCollectErrors(t *testing.T) {
	good := collectOutput("abc", map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
	for name, tc := range map[string]struct {
		out, want string
	}{
		"no begin":        {"hello\n", "no BEGIN marker"},
		"other nonce":     {good, "no BEGIN marker"},
		"truncated":       {good[:strings.Index(good, "DONE")], "no DONE marker"},
		"corrupted":       {strings.Replace(good, "cm9vd", "cm9ve", 1), "do not match their sha256"},
		"bad base64":      {strings.Replace(good, "cm9vd", "!!!!!", 1), "bad base64"},
		"no passwd":       {collectOutput("abc", nil), "no readable /etc/passwd"},
		"bad file header": {strings.Replace(good, "FILE ", "FILE x", 1), "bad line"},
	} {
		nonce := "abc"
		if name == "other nonce" {
			nonce = "xyz"
		}
		if _, err := ParseCollect([]byte(tc.out), nonce); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

// TestCollectScript runs the collect script against a throwaway guest.
func TestCollectScript(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := newGuest(t)
			g.write("/etc/sudoers.d/weird name", "x\n", 0o440, 0, 0)
			g.write("/etc/sudoers.d/.hidden", "y\n", 0o440, 0, 0)
			g.symlink("/etc/sudoers.d/README", "/etc/sudoers.d/link")
			if err := os.Remove(g.path("/etc/subgid")); err != nil {
				t.Fatal(err)
			}
			c := g.collect(sh)
			for _, name := range []string{"passwd", "shadow", "group", "gshadow", "subuid", "login.defs"} {
				if !c.Exists("/etc/" + name) {
					t.Errorf("/etc/%s not read", name)
				}
			}
			if c.Exists("/etc/subgid") || c.Files.Subgid != nil {
				t.Error("the missing /etc/subgid was reported as read")
			}
			if string(c.Files.Shadow) != g.read("/etc/shadow") || string(c.Files.LoginDefs) != g.read("/etc/login.defs") {
				t.Error("contents differ")
			}
			var names []string
			for n := range c.Files.Sudoers {
				names = append(names, n)
			}
			if len(names) != 3 || c.Files.Sudoers["README"] == nil || c.Files.Sudoers[".hidden"] == nil || c.Files.Sudoers["90-cloud-init-users"] == nil {
				t.Errorf("sudoers drop-ins %v", names)
			}
			if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "unusual name") {
				t.Errorf("notes %v", c.Notes)
			}
			if c.Facts.OSRelease["ID"] != "debian" || c.Facts.Kernel == "" {
				t.Errorf("facts %+v", c.Facts)
			}
			if !reflect.DeepEqual(c.Facts.Packages, []Package{{Name: "base-files", Version: "12.4+deb12u5", Architecture: "amd64", Source: "base-files", SourceVersion: "12.4+deb12u5"}}) {
				t.Errorf("packages %v", c.Facts.Packages)
			}
			if c.Facts.PackageManager != artifactstate.PackageManagerDpkg {
				t.Errorf("package manager %q", c.Facts.PackageManager)
			}
			// The NIC's address; not the loopback's or the bridge's.
			if !reflect.DeepEqual(c.MACs, []string{buildMAC}) {
				t.Errorf("MACs %v", c.MACs)
			}
		})
	}
}

// A guest without dpkg (and, below a ROOT, without rpm) gives an empty
// package list and a warning, not a failure.
func TestCollectScriptWithoutDpkg(t *testing.T) {
	g := newGuest(t)
	if err := os.RemoveAll(g.path("/var/lib/dpkg")); err != nil {
		t.Fatal(err)
	}
	c := g.collect(shells(t)[0])
	if c.Facts.Packages == nil || len(c.Facts.Packages) != 0 || c.Facts.PackageManager != "" {
		t.Errorf("packages %v (%q), want an empty list", c.Facts.Packages, c.Facts.PackageManager)
	}
	if !slices.ContainsFunc(c.Notes, func(n string) bool { return strings.HasPrefix(n, "Warning:") && strings.Contains(n, "no dpkg-query") }) {
		t.Errorf("no warning among the notes %q", c.Notes)
	}
}

// PKG lines: dpkg's seven fields, rpm's five, the old four; others are
// skipped, and so are packages that are not installed.
func TestParsePackage(t *testing.T) {
	for line, want := range map[string]*Package{
		"PKG\tinstall ok installed\tlibssl3\t3.0.15-1~deb12u1\tamd64\topenssl\t3.0.15-1~deb12u1": {Name: "libssl3", Version: "3.0.15-1~deb12u1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.15-1~deb12u1"},
		"PKG\tinstalled\tbash\t5.2.26-1.fc41\tx86_64":                                            {Name: "bash", Version: "5.2.26-1.fc41", Architecture: "x86_64"},
		"PKG\tinstall ok installed\tzsh\t5.9-4":                                                  {Name: "zsh", Version: "5.9-4"},
		"PKG\tdeinstall ok config-files\tfoo\t1.0\tamd64\tfoo\t1.0":                              nil,
		"PKG\tinstall ok installed\t\t1.0":                                                       nil,
		"PKG\tinstall ok installed\ta\t1\tamd64\ta\t1\textra":                                    nil,
	} {
		p, ok := parsePackage(line)
		if ok != (want != nil) || want != nil && p != *want {
			t.Errorf("%q: %+v %v, want %+v", line, p, ok, want)
		}
	}
}

// TestParseCollectMACs: the NICs' MAC addresses, lowercase, each once;
// what is not an Ethernet address, and the all-zero one, is left out.
func TestParseCollectMACs(t *testing.T) {
	out := collectOutput("abc", map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
		"FACT mac 52:54:00:AB:cd:EF", "FACT mac 52:54:00:ab:cd:ef", "FACT mac 00:00:00:00:00:00",
		"FACT mac 80:00:02:08:fe:80:00:00:00:00:00:00:00:11:22:33:44:55:66:77", "FACT mac garbage; rm -rf /",
		"FACT mac ", "FACT mac 02:00:00:00:00:02 ")
	c, err := ParseCollect([]byte(out), "abc")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"52:54:00:ab:cd:ef", "02:00:00:00:00:02"}; !reflect.DeepEqual(c.MACs, want) {
		t.Errorf("MACs %v, want %v", c.MACs, want)
	}
}

func TestParseOSRelease(t *testing.T) {
	in := "# comment\nNAME=\"Ubuntu\"\nVERSION_ID='24.04'\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Say \\\"hi\\\" \\$x\"\n\nbad line\n=novalue\nEMPTY=\n"
	want := map[string]string{"NAME": "Ubuntu", "VERSION_ID": "24.04", "ID": "ubuntu", "ID_LIKE": "debian", "PRETTY_NAME": `Say "hi" $x`, "EMPTY": ""}
	if got := ParseOSRelease([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if got := ParseOSRelease(nil); len(got) != 0 {
		t.Errorf("nil: %v", got)
	}
}

func FuzzParseCollect(f *testing.F) {
	f.Add(collectOutput("abc", map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\n"}, "PKG\ta\tb\tc"))
	f.Add("BEGIN abc\nFILE " + strings.Repeat("0", 64) + " /etc/passwd\n\nEND\nDONE abc\n")
	f.Fuzz(func(t *testing.T, out string) {
		c, err := ParseCollect([]byte(out), "abc")
		if err != nil {
			return
		}
		if c.Files.Passwd == nil || c.Facts.OSRelease == nil || c.Facts.Packages == nil {
			t.Fatal("a parsed result without passwd, os_release or packages")
		}
		for _, m := range c.MACs {
			if !macRE.MatchString(m) {
				t.Fatalf("bad MAC %q", m)
			}
		}
		for p, sum := range c.SHA256 {
			if len(sum) != 64 || !strings.HasPrefix(p, "/") {
				t.Fatalf("bad sha entry %q %q", p, sum)
			}
		}
	})
}
