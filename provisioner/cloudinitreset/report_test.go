package cloudinitreset

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
)

func TestParseApply(t *testing.T) {
	out := strings.Join([]string{
		"sudo noise",
		"CHECK unchanged-since-read ok the files to change still have the contents that were read",
		"CHANGED /etc/passwd",
		"WOULD-CHANGE /etc/shadow",
		"REMOVED /home/packer",
		"WOULD-REMOVE /tmp/x y",
		"SET /etc/machine-id empty",
		"NOTE something happened",
		"CHECK passwd ok no entry for packer",
		"CHECK home fail /home/packer still exists",
		"CHECK bad-status maybe x",
		"CHECK",
		"DONE other ok",
		"DONE n0nce fail",
		"CHECK after-done ok ignored",
	}, "\r\n")
	r := ParseApply([]byte(out), "n0nce")
	want := &ApplyResult{
		Checks: []Check{
			{"unchanged-since-read", true, "the files to change still have the contents that were read"},
			{"passwd", true, "no entry for packer"},
			{"home", false, "/home/packer still exists"},
		},
		Changed: []string{"/etc/passwd", "/etc/shadow"},
		Removed: []string{"/home/packer", "/tmp/x y"},
		Set:     []string{"/etc/machine-id empty"},
		Notes:   []string{"something happened"},
		Done:    true,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if f := r.Failed(); len(f) != 1 || f[0].Name != "home" {
		t.Errorf("failed %v", f)
	}

	r = ParseApply([]byte("CHECK a ok\nABORT /etc/group changed since it was read; nothing was changed\n"), "n0nce")
	if r.Done || r.Abort != "/etc/group changed since it was read; nothing was changed" || len(r.Checks) != 1 {
		t.Errorf("abort: %+v", r)
	}
	r = ParseApply([]byte("ERROR the reset stopped during step accounts (exit status 1)\n"), "n0nce")
	if r.Done || r.Error == "" {
		t.Errorf("error: %+v", r)
	}
}

func TestVerdict(t *testing.T) {
	r := &run{cfg: &Config{}, ui: newTestUI()}
	for name, tc := range map[string]struct {
		status int
		res    ApplyResult
		want   string // "" for success
	}{
		"ok":                  {0, ApplyResult{Done: true, OK: true}, ""},
		"ok, disconnect":      {2300218, ApplyResult{Done: true, OK: true}, ""},
		"ok, odd status":      {255, ApplyResult{Done: true, OK: true}, ""},
		"abort":               {3, ApplyResult{Abort: "x changed"}, "aborted before changing anything: x changed"},
		"failed check":        {1, ApplyResult{Done: true, Checks: []Check{{"home", false, "still there"}}}, "checks failed: home (still there)"},
		"failed, disconnect":  {2300218, ApplyResult{Done: true, OK: false}, "checks failed"},
		"error":               {1, ApplyResult{Error: "stopped during step accounts"}, "stopped during step accounts; the guest may be partly reset"},
		"disconnect, no done": {2300218, ApplyResult{}, "ended before the report was complete"},
		"no report":           {1, ApplyResult{}, "without a complete report"},
	} {
		err := r.verdict(nil, tc.status, &tc.res)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

// TestFactsJSON pins the facts file's shape: the metadata post-processor
// embeds it, so keys are only ever added.
func TestFactsJSON(t *testing.T) {
	f := &Facts{
		Facts: artifactstate.Facts{
			OSRelease:        map[string]string{"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"},
			Kernel:           "6.1.0-27-cloud-amd64",
			CloudInitVersion: "22.4.2",
			PackageManager:   artifactstate.PackageManagerDpkg,
			Packages: []Package{
				{Name: "base-files", Version: "12.4+deb12u8", Architecture: "amd64", Source: "base-files", SourceVersion: "12.4+deb12u8"},
				{Name: "cloud-init", Version: "22.4.2-1", Architecture: "all", Source: "cloud-init", SourceVersion: "22.4.2-1"},
			},
		},
		Reset: &Report{
			User:         "packer",
			RemovedGroup: "packer",
			ChangedFiles: []string{"/etc/passwd", "/etc/sudoers.d/90-cloud-init-users"},
			RemovedPaths: []string{"/home/packer"},
			Messages:     []string{"removing packer (UID 1000, GID 1000, home /home/packer)"},
			Checks:       []Check{{"passwd", true, "no entry for packer"}},
			Hostname:     &HostnameReport{BuildNames: []string{"packer-web"}, Restore: RestoreSavedCopy},
		},
	}
	p := filepath.Join(t.TempDir(), "new", "dir", "facts.json")
	if err := WriteFacts(p, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "facts.json", string(b))
	var back Facts
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, f) {
		t.Errorf("round trip: %v %+v", err, back)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// Empty lists are [] rather than null.
	empty := &Facts{Facts: artifactstate.Facts{OSRelease: map[string]string{}, Packages: []Package{}}, Reset: &Report{ChangedFiles: emptyIfNil(nil), RemovedPaths: emptyIfNil(nil), Messages: emptyIfNil(nil), Checks: []Check{}}}
	b, _ = json.Marshal(empty)
	if strings.Contains(string(b), "null") {
		t.Errorf("null in %s", b)
	}
}

func FuzzParseApply(f *testing.F) {
	f.Add("CHECK a ok b\nREMOVED /x\nDONE n0nce ok\n")
	f.Add("ABORT x\n")
	f.Fuzz(func(t *testing.T, out string) {
		r := ParseApply([]byte(out), "n0nce")
		if r.OK && !r.Done {
			t.Fatal("OK without DONE")
		}
		for _, c := range r.Checks {
			if c.Name == "" || strings.ContainsAny(c.Name, " \n") {
				t.Fatalf("bad check name %q", c.Name)
			}
		}
	})
}
