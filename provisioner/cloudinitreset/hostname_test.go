package cloudinitreset

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
)

func TestSavedDirIsTheSeeds(t *testing.T) {
	if savedDir != cidata.SavedEtcDir {
		t.Errorf("the tests' saved directory %s is not the seed's %s", savedDir, cidata.SavedEtcDir)
	}
	if !slices.Equal(cidata.SavedEtcFiles, []string{"hostname", "hosts"}) {
		t.Errorf("the seed saves %v", cidata.SavedEtcFiles)
	}
}

// collected builds what the collect script would have read.
func collected(kernel, osID string, files map[string]string) *Collected {
	c := &Collected{SHA256: map[string]string{}, contents: map[string][]byte{}, KernelHostname: kernel}
	c.Facts.OSRelease = map[string]string{"ID": osID}
	for p, content := range files {
		c.contents[p] = []byte(content)
		c.SHA256[p] = sha256Hex([]byte(content))
	}
	return c
}

func TestPlanHostnameNames(t *testing.T) {
	for _, tc := range []struct {
		name        string
		kernel      string
		setHostname string // "" for none
		saved       map[string]string
		want        []string
		skipped     []string // substrings, in order
	}{
		{name: "kernel only", kernel: "packer-web", want: []string{"packer-web"}},
		{name: "set-hostname and kernel", kernel: "Packer-Web", setHostname: `{"fqdn": "packer-web.example.org", "hostname": "packer-web"}`,
			want: []string{"packer-web", "packer-web.example.org"}},
		{name: "a provisioner renamed the host", kernel: "renamed", setHostname: `{"fqdn": "packer-web", "hostname": "packer-web"}`,
			want: []string{"packer-web", "renamed"}},
		{name: "loopback names", kernel: "localhost", setHostname: `{"fqdn": "localhost.localdomain", "hostname": "localhost"}`,
			skipped: []string{"localhost (a loopback name)", "localhost.localdomain (a loopback name)"}},
		{name: "the distribution's default", kernel: "debian", skipped: []string{"debian (the distribution's default hostname"}},
		{name: "the source image's own name", kernel: "node", saved: map[string]string{"hostname": "node\n", "hosts": sourceHosts},
			skipped: []string{"node (the source image's own"}},
		{name: "a name in the source's hosts", kernel: "gw", saved: map[string]string{"hosts": "10.0.0.1 gw # gateway\n"},
			skipped: []string{"gw (the source image's own"}},
		{name: "not a host name", kernel: "a'b", skipped: []string{`"a'b" (not a host name)`}},
		{name: "unset kernel hostname", kernel: "(none)"},
		{name: "bad JSON", kernel: "packer-web", setHostname: "{", want: []string{"packer-web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.setHostname != "" {
				files[setHostnamePath] = tc.setHostname
			}
			for f, content := range tc.saved {
				files[savedDir+"/"+f] = content
			}
			p := PlanHostname(collected(tc.kernel, "debian", files))
			if !slices.Equal(p.Names, tc.want) {
				t.Errorf("names %q, want %q", p.Names, tc.want)
			}
			if len(p.Skipped) != len(tc.skipped) {
				t.Fatalf("skipped %q, want %q", p.Skipped, tc.skipped)
			}
			for i, s := range tc.skipped {
				if !strings.Contains(p.Skipped[i], s) {
					t.Errorf("skipped[%d] = %q, want %q", i, p.Skipped[i], s)
				}
			}
		})
	}
}

func TestPlanHostnameFiles(t *testing.T) {
	set := `{"fqdn": "packer-web", "hostname": "packer-web"}`
	for _, tc := range []struct {
		name    string
		files   map[string]string
		restore string
		actions []string // path:action
		summary string
	}{
		{name: "saved copy", files: map[string]string{etcHostname: "packer-web\n", etcHosts: buildHosts, savedDir + "/hostname": "\n", savedDir + "/hosts": sourceHosts},
			restore: RestoreSavedCopy, actions: []string{"/etc/hostname:saved", "/etc/hosts:saved"}, summary: "restored from the source image's copy: /etc/hostname, /etc/hosts"},
		{name: "source had no hostname", files: map[string]string{etcHostname: "packer-web\n", savedDir + "/hostname.absent": "", savedDir + "/hosts": sourceHosts},
			restore: RestoreSavedCopy, actions: []string{"/etc/hostname:absent", "/etc/hosts:saved"}},
		{name: "neither file, nothing saved", files: map[string]string{}, restore: RestoreFallback,
			summary: "no saved copy of the source's files, and neither names the build host"},
		{name: "fallback", files: map[string]string{etcHostname: "PACKER-WEB\n", etcHosts: buildHosts}, restore: RestoreFallback,
			actions: []string{"/etc/hostname:empty", "/etc/hosts:rewrite"},
			summary: "no saved copy of the source's files: /etc/hostname emptied, the build's names taken out of /etc/hosts"},
		{name: "fallback: an fqdn in /etc/hostname", files: map[string]string{etcHostname: "packer-web.example.org\n", etcHosts: sourceHosts}, restore: RestoreFallback,
			actions: []string{"/etc/hostname:empty"}},
		{name: "fallback keeps another name", files: map[string]string{etcHostname: "golden\n", etcHosts: sourceHosts}, restore: RestoreFallback,
			summary: "no saved copy of the source's files, and neither names the build host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.files[setHostnamePath] = set
			p := PlanHostname(collected("packer-web", "debian", tc.files))
			var actions []string
			for _, f := range p.Files {
				actions = append(actions, f.Path+":"+f.Action)
			}
			if p.Restore != tc.restore || !slices.Equal(actions, tc.actions) {
				t.Errorf("restore %s, actions %v; want %s, %v", p.Restore, actions, tc.restore, tc.actions)
			}
			if tc.summary != "" && p.Summary != tc.summary {
				t.Errorf("summary %q, want %q", p.Summary, tc.summary)
			}
			if r := p.Report(); r.Restore != tc.restore || !slices.Equal(r.BuildNames, []string{"packer-web"}) {
				t.Errorf("report %+v", r)
			}
			for _, f := range p.Files {
				switch f.Action {
				case etcFromSaved:
					if f.OldSHA != sha256Hex([]byte(tc.files[f.Saved])) || f.NewSHA != f.OldSHA {
						t.Errorf("%s: sums %s %s", f.Path, f.OldSHA, f.NewSHA)
					}
				case etcRewrite:
					if f.NewSHA != sha256Hex(f.Content) || f.OldSHA != sha256Hex([]byte(tc.files[f.Path])) || f.Upload == "" {
						t.Errorf("%s: %+v", f.Path, f)
					}
				case etcEmpty:
					if f.NewSHA != sha256Hex(nil) || f.OldSHA != sha256Hex([]byte(tc.files[f.Path])) {
						t.Errorf("%s: %+v", f.Path, f)
					}
				}
			}
		})
	}
}

func TestHostsWithout(t *testing.T) {
	names := []string{"packer-web", "packer-web.example.org"}
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1 localhost\n", "127.0.0.1 localhost\n"},
		{"127.0.1.1 packer-web.example.org packer-web\n127.0.0.1 localhost\n", "127.0.0.1 localhost\n"},
		{"127.0.0.1 localhost Packer-Web\n", "127.0.0.1\tlocalhost\n"},
		{"10.0.0.1 db packer-web # comment\n", "10.0.0.1\tdb # comment\n"},
		{"# packer-web in a comment stays\n", "# packer-web in a comment stays\n"},
		{"127.0.1.1 packer-webserver\n", "127.0.1.1 packer-webserver\n"},
		{"no newline at end packer-web", "no\tnewline at end"},
		{"127.0.1.1 packer-web", ""},
		{"\n\n", "\n\n"},
		{"127.0.1.1 packer-web.other.example packer-web\n", ""}, // an fqdn cloud-init's record lacked
		{"127.0.1.1 web.packer-web.example\n", "127.0.1.1 web.packer-web.example\n"},
	} {
		got, changed := hostsWithout([]byte(tc.in), names)
		if string(got) != tc.want || changed != (tc.in != tc.want) {
			t.Errorf("%q: got %q (changed %v), want %q", tc.in, got, changed, tc.want)
		}
	}
	if got, changed := hostsWithout([]byte("127.0.1.1 x\n"), nil); changed || string(got) != "127.0.1.1 x\n" {
		t.Errorf("no names: %q %v", got, changed)
	}
}

// TestCollectHostname: the collect script reads the kernel's hostname, the
// set-hostname record and the seed's copy, or without a copy /etc/hostname
// and /etc/hosts.
func TestCollectHostname(t *testing.T) {
	for _, sh := range shells(t) {
		g := newGuest(t)
		g.write(savedDir+"/hostname.absent", "", 0o644, 0, 0)
		c := g.collect(sh)
		if c.KernelHostname != "packer-web" {
			t.Errorf("%s: kernel hostname %q", sh, c.KernelHostname)
		}
		for _, p := range []string{setHostnamePath, savedDir + "/hostname", savedDir + "/hosts", savedDir + "/hostname.absent"} {
			if !c.Exists(p) {
				t.Errorf("%s: %s not read", sh, p)
			}
		}
		if b, _ := c.File(savedDir + "/hosts"); string(b) != sourceHosts {
			t.Errorf("%s: saved hosts %q", sh, b)
		}
		for _, p := range []string{savedDir + "/hosts.absent", etcHostname, etcHosts} {
			if c.Exists(p) {
				t.Errorf("%s: %s was read", sh, p)
			}
		}

		if err := os.RemoveAll(g.path(savedDir)); err != nil {
			t.Fatal(err)
		}
		c = g.collect(sh)
		if b, _ := c.File(etcHosts); string(b) != buildHosts || !c.Exists(etcHostname) || !c.Exists(setHostnamePath) {
			t.Errorf("%s: without a copy, /etc/hostname and /etc/hosts were not read", sh)
		}
	}
}
