package cloudinitreset

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/accounts"
)

// libSh runs body after sourcing the library (reset.sh) with shell, in dir
// as ROOT, and returns stdout and the exit code.
func libSh(t *testing.T, shell, dir, body string) (string, int) {
	t.Helper()
	lib, err := filepath.Abs("reset.sh")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", `. "$0"; ` + body, lib}
	if strings.HasSuffix(shell, "busybox") {
		args = append([]string{"sh"}, args...)
	}
	cmd := exec.Command(shell, args...)
	cmd.Env = append(os.Environ(), "ROOT="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return string(out), code
}

// TestLibraryRunsNothing: sourcing the library only defines functions.
func TestLibraryRunsNothing(t *testing.T) {
	for _, sh := range shells(t) {
		dir := t.TempDir()
		if out, code := libSh(t, sh, dir, `echo sourced`); out != "sourced\n" || code != 0 {
			t.Errorf("%s: %q, exit %d", sh, out, code)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: sourcing wrote %v", sh, entries)
		}
	}
}

// TestLibraryFunctions runs functions of the library alone, under each
// shell, with the state they read set by hand.
func TestLibraryFunctions(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		files            []string // made below ROOT first
		code             int
	}{
		{"remove refuses vital paths, skips missing ones, keeps blanks", `VITAL='/ /etc'; DRY=0; remove "$ROOT/etc" "$ROOT/srv/a b" "$ROOT/nope"; [ ! -e "$ROOT/srv/a b" ]`,
			"NOTE refused to remove /etc: it is vital to the system\nREMOVED /srv/a b\n", []string{"/etc/x", "/srv/a b/c"}, 0},
		{"remove in a dry run", `VITAL=; DRY=1; remove "$ROOT/srv/a b"; [ -e "$ROOT/srv/a b" ]`,
			"WOULD-REMOVE /srv/a b\n", []string{"/srv/a b/c"}, 0},
		{"remove_glob expands below ROOT only", `VITAL=; DRY=0; remove_glob '/srv/*.log' '/srv/x y/*'`,
			"REMOVED /srv/a.log\nREMOVED /srv/b.log\nREMOVED /srv/x y/z\n", []string{"/srv/a.log", "/srv/b.log", "/srv/c.txt", "/srv/x y/z"}, 0},
		{"check counts failures", `FAILED=0; check a ok fine; check b fail "not fine"; echo "$FAILED"`,
			"CHECK a ok fine\nCHECK b fail not fine\n1\n", nil, 0},
		{"verify_keyed", `FAILED=0; USER_NAME=packer; printf 'root:x:0:\nadm:x:4:syslog,packer\n' >"$ROOT/etc/group"; verify_keyed group 4`,
			"CHECK group fail /etc/group still lists packer as a member\n", []string{"/etc/keep"}, 0},
		{"joined and mac_shown", `joined 'a b c'; echo; BUILD_MACS='52:54:00:00:00:01'; mac_shown; echo; BUILD_MACS='52:54:00:00:00:01 52:54:00:00:00:02'; mac_shown`,
			"a, b, c\nMAC address 52:54:00:00:00:01\nMAC addresses 52:54:00:00:00:01, 52:54:00:00:00:02", nil, 0},
		{"field", `field 'abc d e f'; printf '%s|%s\n' "$FIELD" "$REST"; field 'x'; printf '%s|%s\n' "$FIELD" "$REST"`,
			"abc|d e f\nx|\n", nil, 0},
		{"a collect plan", `main 3<<'P'
# a comment

collect n0nce
read-file /etc/ab
send-files
done
end
P`, "BEGIN n0nce\nFILE e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 /etc/ab\nEND\nDONE n0nce\n", []string{"/etc/ab"}, 0},
		{"a plan cut short", `main 3<<'P'
collect n0nce
done
P`, "BEGIN n0nce\nDONE n0nce\nERROR the plan ended without its end record (was the upload cut short?)\n", nil, 2},
		{"an unknown record", `main 3<<'P'
collect n0nce
format-disk /
end
P`, "BEGIN n0nce\nERROR unknown plan record format-disk\n", nil, 2},
		{"no plan", `main 3</dev/null`, "", nil, 2},
	} {
		for _, sh := range shells(t) {
			t.Run(tc.name+"/"+filepath.Base(sh), func(t *testing.T) {
				dir := t.TempDir()
				for _, f := range tc.files {
					p := filepath.Join(dir, f)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				out, code := libSh(t, sh, dir, tc.body)
				if out != tc.want || code != tc.code {
					t.Errorf("got %q, exit %d; want %q, exit %d", out, code, tc.want, tc.code)
				}
			})
		}
	}
}

// TestPlanWriter: what a record may hold (the library splits records at
// blanks, lines at newlines).
func TestPlanWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w *planWriter)
		want  string // "" for an error
	}{
		{"last argument with blanks", func(w *planWriter) { w.rec("remove", "/srv/my data") }, "remove /srv/my data\n"},
		{"no arguments", func(w *planWriter) { w.words("sync") }, "sync\n"},
		{"comment", func(w *planWriter) { w.comment("hello") }, "# hello\n"},
		{"empty last argument", func(w *planWriter) { w.rec("data", "subuid", "") }, "data subuid \n"},
		{"newline", func(w *planWriter) { w.rec("remove", "/a\nend") }, ""},
		{"NUL", func(w *planWriter) { w.rec("remove", "/a\x00") }, ""},
		{"blank before the last", func(w *planWriter) { w.rec("stage", "a b", "keep", "/etc/x") }, ""},
		{"empty before the last", func(w *planWriter) { w.rec("stage", "", "keep", "/etc/x") }, ""},
		{"blank in words", func(w *planWriter) { w.words("hostnames", "a", "b c") }, ""},
		{"glob in words", func(w *planWriter) { w.words("lock", "pass*") }, ""},
		{"newline in a comment", func(w *planWriter) { w.comment("a\nrm x") }, ""},
	} {
		w := &planWriter{}
		tc.write(w)
		got, err := w.String()
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: no error; plan %q", tc.name, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestApplyPlanRecords: which records the options put into the plan.
func TestApplyPlanRecords(t *testing.T) {
	files, sums := fixtureFiles(t)
	plan, err := accounts.RemoveUser(files, "packer")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		mod       func(o *ApplyOptions, p *accounts.Plan)
		has, lack []string
	}{
		{"default", func(*ApplyOptions, *accounts.Plan) {},
			[]string{"reset n0nce apply", "lock passwd shadow group gshadow subuid subgid", "remove /etc/passwd-", "set-machine-id empty",
				"clean-cloud-state keep-seed", "clean-tmp", "verify-cloud-dir keep-seed", "start-traces-search all", "done", "end"},
			[]string{"poweroff 5", "run apt-get-clean", "write-identity", "hostnames"}},
		{"dry run", func(o *ApplyOptions, _ *accounts.Plan) { o.DryRun = true },
			[]string{"reset n0nce dry-run", "done", "end"},
			[]string{"lock passwd shadow group gshadow subuid subgid", "start-owned-search", "start-seed-stop", "start-traces-search all", "step verify", "verify-home"}},
		{"switches", func(o *ApplyOptions, _ *accounts.Plan) {
			o.KeepPasswdBackups, o.RemoveCloudSeed, o.RemoveSSHHostKeys, o.CleanJournal = true, true, false, true
			o.ShutdownAfter, o.MachineID = true, MachineIDUninitialized
		},
			[]string{"clean-cloud-state all", "verify-cloud-dir all", "start-traces-search keep-host-keys", "run journal-rotate", "poweroff 5", "set-machine-id uninitialized"},
			[]string{"remove /etc/passwd-", "remove-glob /etc/ssh/ssh_host_*"}},
		{"a home and an extra path with blanks", func(o *ApplyOptions, p *accounts.Plan) {
			p.Home, o.ExtraPaths = "/home/my packer", []string{"/srv/it's here/*.log"}
		},
			[]string{"home /home/my packer", "remove-extra /srv/it's here/*.log"}, nil},
		{"no MAC, no search", func(o *ApplyOptions, _ *accounts.Plan) { o.NICMACs = nil },
			nil, []string{"macs", "start-traces-search all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			o.NICMACs = []string{buildMAC}
			p := *plan
			tc.mod(&o, &p)
			b, err := BuildApply(&p, nil, sums, o)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(b.Plan, "\n")
			for _, want := range tc.has {
				if !slices.Contains(lines, want) {
					t.Errorf("the plan lacks %q:\n%s", want, b.Plan)
				}
			}
			for _, bad := range tc.lack {
				if slices.ContainsFunc(lines, func(l string) bool { return l == bad || strings.HasPrefix(l, bad+" ") }) {
					t.Errorf("the plan has %q", bad)
				}
			}
		})
	}
	p := *plan
	p.Home = "/home/a\nend"
	if _, err := BuildApply(&p, nil, sums, defaultOptions()); err == nil {
		t.Error("a home with a newline: no error")
	}
}

// TestApplyScriptHomeWithBlank: a home whose path holds a blank travels in
// the plan as it is, and is removed.
func TestApplyScriptHomeWithBlank(t *testing.T) {
	sh := shells(t)[0]
	g := newGuest(t)
	g.write("/etc/passwd", strings.Replace(g.read("/etc/passwd"), ":/home/packer:", ":/home/my packer:", 1), 0o644, 0, 0)
	if err := os.Rename(g.path("/home/packer"), g.path("/home/my packer")); err != nil {
		t.Fatal(err)
	}
	_, _, b := planFor(t, g, sh, "packer", defaultOptions())
	if !strings.Contains(b.Plan, "\nhome /home/my packer\n") {
		t.Fatalf("plan:\n%s", b.Plan)
	}
	_, res := g.mustApply(t, sh, b)
	if g.exists("/home/my packer") || !slices.Contains(res.Removed, "/home/my packer") {
		t.Errorf("the home was not removed; removed %v", res.Removed)
	}
}

// TestLibraryDataRecords: data records, one of an empty file (an account
// file can become empty), land in the temporary directory as they were.
func TestLibraryDataRecords(t *testing.T) {
	plan := "reset n0nce dry-run\n" +
		"data empty \n" +
		"data full aGkK\n" +
		"expect-new " + sha256Hex(nil) + " empty\n" +
		"expect-new " + sha256Hex([]byte("hi\n")) + " full\n" +
		"check data ok decoded\n" +
		"end\n"
	for _, sh := range shells(t) {
		dir := t.TempDir()
		p := filepath.Join(dir, "tmp", "apply.sh")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(Script(plan)), 0o600); err != nil {
			t.Fatal(err)
		}
		g := &guest{t: t, root: dir}
		out, code := g.runScript(sh, p)
		if out != "CHECK data ok decoded\n" || code != 0 {
			t.Errorf("%s: %q, exit %d", sh, out, code)
		}
		if _, err := os.Stat(filepath.Dir(p)); !os.IsNotExist(err) {
			t.Errorf("%s: the temporary directory is still there", sh)
		}
	}
}
