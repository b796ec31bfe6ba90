package accounts

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// loadFixture reads the account files of testdata/<dir>; missing files are nil.
func loadFixture(t testing.TB, dir string) Files {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := Files{
		Passwd: read("passwd"), Shadow: read("shadow"), Group: read("group"), Gshadow: read("gshadow"),
		Subuid: read("subuid"), Subgid: read("subgid"), LoginDefs: read("login.defs"),
	}
	entries, err := os.ReadDir(filepath.Join("testdata", dir, "sudoers.d"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if f.Sudoers == nil {
			f.Sudoers = map[string][]byte{}
		}
		f.Sudoers[e.Name()] = read(filepath.Join("sudoers.d", e.Name()))
	}
	return f
}

// report renders a plan the way a dry run would show it.
func report(f Files, p *Plan) string {
	var sb strings.Builder
	for _, m := range p.Messages {
		sb.WriteString("# " + m + "\n")
	}
	olds := map[string][]byte{"passwd": f.Passwd, "shadow": f.Shadow, "group": f.Group, "gshadow": f.Gshadow, "subuid": f.Subuid, "subgid": f.Subgid}
	for _, name := range p.Changed {
		b, _ := p.File(name)
		sb.WriteString(Diff("/etc/"+name, olds[name], b))
	}
	for name, b := range p.SudoersWrite {
		sb.WriteString(Diff("/etc/sudoers.d/"+name, f.Sudoers[name], b))
	}
	for _, name := range p.SudoersRemove {
		sb.WriteString(Diff("/etc/sudoers.d/"+name, f.Sudoers[name], nil))
	}
	return sb.String()
}

// replaceLine replaces the line equal to old in b (which must exist).
func replaceLine(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	s := "\n" + string(b)
	if !strings.Contains(s, "\n"+old+"\n") {
		t.Fatalf("fixture has no line %q", old)
	}
	return []byte(strings.Replace(s, "\n"+old+"\n", "\n"+new+"\n", 1)[1:])
}

func lines(b []byte) []string {
	l, _ := splitLines(b)
	return l
}

// TestFixtures runs RemoveUser on the Debian 12 and Ubuntu 24.04 fixtures,
// some of them modified, and checks the interesting lines, the golden
// dry-run report where one is named, and the general properties.
func TestFixtures(t *testing.T) {
	ciRemoved := []string{CloudInitSudoers}
	tests := []struct {
		name, dir, user string
		mutate          func(t testing.TB, f *Files)
		golden          string
		present         bool
		removedGroup    string
		keptReason      string   // substring of KeptGroupReason
		want            []string // "file:line" that must be in the output
		gone            []string // "file:line" that must not be in the output
		message         string   // substring of one message
		sudoersWrite    []string
		sudoersRemove   []string
		mentions        []string // Mention.String() values
	}{
		{
			name: "debian12 packer", dir: "debian12", user: "packer", golden: "debian12/packer.golden",
			present: true, removedGroup: "packer",
			want: []string{
				"passwd:_chrony:x:102:104:Chrony daemon,,,:/var/lib/chrony:/usr/sbin/nologin",
				"shadow:_chrony:!:20783::::::",
				"group:_chrony:x:104:",
				"gshadow:_chrony:!::",
				"group:adm:x:4:deploy",         // packer first
				"group:users:x:100:deploy,ops", // packer in the middle
				"group:sudo:x:27:deploy",       // packer last
				"group:dialout:x:20:",          // packer alone
				"gshadow:adm:*::deploy",
				"gshadow:users:*::deploy,ops",
				"gshadow:netdev:!::",
				"subuid:deploy:165536:65536",
			},
			gone:          []string{"group:packer:x:1000:", "gshadow:packer:!::", "subgid:packer:100000:65536"},
			sudoersRemove: []string{CloudInitSudoers},
		},
		{
			name: "ubuntu2404 packer: group kept as primary group of packer-ci", dir: "ubuntu2404", user: "packer",
			golden: "ubuntu2404/packer.golden", present: true, keptReason: "primary group of packer-ci",
			want: []string{
				"passwd:packer2:x:1001:1001::/home/packer2:/bin/bash",
				"passwd:packer-ci:x:1002:1000:CI runner,,,:/home/packer-ci:/bin/bash",
				"passwd:xpacker:x:1003:1003::/home/xpacker:/bin/sh",
				"group:packer:x:1000:",
				"gshadow:packer:!::",
				"group:sudo:x:27:packer2",
				"group:users:x:100:packer2,packer-ci,xpacker",
				"group:lxd:x:101:xpacker,packer-ci",
				"gshadow:lxd:!::xpacker,packer-ci", // admin removed too
				"gshadow:adm:*::syslog",
				"subuid:packer2:165536:65536",
				"subuid:packer-ci:231072:65536",
				"subuid:xpacker:296608:65536",
			},
			gone:         []string{"passwd:packer:x:1000:1000:Packer build user:/home/packer:/bin/bash", "subuid:packer:100000:65536"},
			sudoersWrite: []string{CloudInitSudoers},
		},
		{
			name: "ubuntu2404 packer2: personal group removed, packer untouched", dir: "ubuntu2404", user: "packer2",
			present: true, removedGroup: "packer2",
			want: []string{
				"passwd:packer:x:1000:1000:Packer build user:/home/packer:/bin/bash",
				"group:sudo:x:27:packer",
				"group:users:x:100:packer,packer-ci,xpacker",
				"group:packer:x:1000:",
				"subuid:packer:100000:65536",
			},
			gone:         []string{"group:packer2:x:1001:", "gshadow:packer2:!::"},
			sudoersWrite: []string{CloudInitSudoers},
		},
		{
			name: "ubuntu2404 xpacker", dir: "ubuntu2404", user: "xpacker", present: true, removedGroup: "xpacker",
			want: []string{"group:lxd:x:101:packer,packer-ci", "group:users:x:100:packer2,packer,packer-ci", "gshadow:lxd:!:packer:packer,packer-ci"},
		},
		{
			name: "ubuntu2404 packer-ci: no personal group, sudoers drop-in reported", dir: "ubuntu2404", user: "packer-ci", present: true,
			want: []string{"group:packer:x:1000:", "group:lxd:x:101:xpacker,packer", "sudoers:50-packer-ci:packer-ci ALL=(root) NOPASSWD: /usr/bin/systemctl restart myapp.service"},
			mentions: []string{
				"/etc/sudoers.d/50-packer-ci:1: packer-ci ALL=(root) NOPASSWD: /usr/bin/systemctl restart myapp.service",
				"/etc/sudoers.d/50-packer-ci:2: Defaults:packer-ci !requiretty",
			},
		},
		{
			name: "absent user (the ubuntu default user was never created)", dir: "ubuntu2404", user: "ubuntu",
			message: "user ubuntu not present: nothing to remove",
		},
		{
			name: "absent from passwd but leftovers in groups, shadow and sudoers", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Passwd = replaceLine(t, f.Passwd, "packer:x:1000:1000::/home/packer:/bin/bash", "")
			},
			keptReason:    "no /etc/passwd entry",
			want:          []string{"group:sudo:x:27:deploy", "group:packer:x:1000:", "gshadow:packer:!::"},
			gone:          []string{"shadow:packer:!:20783:0:99999:7:::", "subuid:packer:100000:65536"},
			message:       "user packer not present in /etc/passwd; removing leftovers",
			sudoersRemove: []string{CloudInitSudoers},
		},
		{
			name: "group kept: it has other members", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Group = replaceLine(t, f.Group, "packer:x:1000:", "packer:x:1000:packer,deploy")
				f.Gshadow = replaceLine(t, f.Gshadow, "packer:!::", "packer:!::packer,deploy")
			},
			present: true, keptReason: "other members: deploy",
			want:          []string{"group:packer:x:1000:deploy", "gshadow:packer:!::deploy"},
			sudoersRemove: ciRemoved,
		},
		{
			name: "group kept: gshadow lists another administrator", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Gshadow = replaceLine(t, f.Gshadow, "packer:!::", "packer:!:ops:")
			},
			present: true, keptReason: "administrators/members: ops",
			want:          []string{"group:packer:x:1000:", "gshadow:packer:!:ops:"},
			sudoersRemove: ciRemoved,
		},
		{
			name: "group kept: not the user's primary group", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Passwd = replaceLine(t, f.Passwd, "packer:x:1000:1000::/home/packer:/bin/bash", "packer:x:1000:100::/home/packer:/bin/bash")
			},
			present: true, keptReason: `GID "1000" is not packer's primary GID 100`,
			want:          []string{"group:packer:x:1000:"},
			sudoersRemove: ciRemoved,
		},
		{
			name: "user listed twice, with blanks, and gshadow admin", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Group = replaceLine(t, f.Group, "sudo:x:27:deploy,packer", "sudo:x:27:packer,deploy, packer")
				f.Gshadow = replaceLine(t, f.Gshadow, "sudo:*::deploy,packer", "sudo:*:packer,ops:packer,deploy,packer")
			},
			present: true, removedGroup: "packer",
			want:          []string{"group:sudo:x:27:deploy", "gshadow:sudo:*:ops:deploy"},
			sudoersRemove: ciRemoved,
		},
		{
			name: "subuid keyed by numeric UID", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Subuid = append(f.Subuid, "1000:300000:65536\n10000:400000:65536\n"...)
				f.Subgid = append(f.Subgid, "1000:300000:65536\n"...)
			},
			present: true, removedGroup: "packer",
			want:          []string{"subuid:10000:400000:65536", "subuid:deploy:165536:65536"},
			gone:          []string{"subuid:1000:300000:65536", "subgid:1000:300000:65536"},
			sudoersRemove: ciRemoved,
		},
		{
			name: "UID shared with another account: numeric ranges and group kept", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Passwd = append(f.Passwd, "packer-alias:x:1000:1000::/home/packer:/bin/bash\n"...)
				f.Subuid = append(f.Subuid, "1000:300000:65536\n"...)
			},
			present: true, keptReason: "primary group of packer-alias",
			want:          []string{"subuid:1000:300000:65536", "passwd:packer-alias:x:1000:1000::/home/packer:/bin/bash"},
			message:       "kept ranges keyed by UID 1000: it is also the UID of packer-alias",
			sudoersRemove: ciRemoved,
		},
		{
			name: "odd lines are left alone; no final newline kept", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Passwd = append([]byte("# managed by hand\n\n"), f.Passwd...)
				f.Passwd = append(f.Passwd, "+::::::\n+@admins\n-packer::::::"...) // NIS compat lines, no final newline
				f.Group = append(f.Group, "broken:x:5\nweird:x:6:packer:extra\n+:::\n#sudo:x:27:packer\n\npacker2:x:1010:packer"...)
				f.Shadow = []byte(strings.TrimSuffix(string(f.Shadow), "\n"))
				f.Gshadow = replaceLine(t, f.Gshadow, "tty:*::", "tty:*::,,packer,")
			},
			present: true, removedGroup: "packer",
			want: []string{
				"passwd:# managed by hand", "passwd:", "passwd:+::::::", "passwd:+@admins", "passwd:-packer::::::",
				"group:broken:x:5", "group:weird:x:6:packer:extra", "group:+:::", "group:#sudo:x:27:packer", "group:",
				"group:packer2:x:1010:", "gshadow:tty:*::,,",
			},
			message:       "/etc/group: line 54 names packer but is a comment, NIS or malformed line; left untouched: weird:x:6:packer:extra",
			sudoersRemove: ciRemoved,
		},
		{
			name: "missing files", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Shadow, f.Gshadow, f.Subuid, f.Subgid, f.LoginDefs, f.Sudoers = nil, nil, nil, nil, nil, nil
			},
			present: true, removedGroup: "packer",
			want: []string{"group:sudo:x:27:deploy"},
		},
		{
			name: "all files empty but passwd", dir: "debian12", user: "packer",
			mutate: func(t testing.TB, f *Files) {
				f.Shadow, f.Group, f.Gshadow, f.Subuid, f.Subgid = []byte{}, []byte{}, []byte{}, []byte{}, nil
			},
			present:       true,
			sudoersRemove: ciRemoved,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFixture(t, tc.dir)
			if tc.mutate != nil {
				tc.mutate(t, &f)
			}
			p, err := RemoveUser(f, tc.user)
			if err != nil {
				t.Fatalf("RemoveUser: %v", err)
			}
			checkPlan(t, f, tc.user, p)
			if p.Present != tc.present {
				t.Errorf("Present = %v, want %v", p.Present, tc.present)
			}
			if p.RemovedGroup != tc.removedGroup {
				t.Errorf("RemovedGroup = %q, want %q (kept because %q)", p.RemovedGroup, tc.removedGroup, p.KeptGroupReason)
			}
			if tc.keptReason == "" && p.KeptGroupReason != "" || !strings.Contains(p.KeptGroupReason, tc.keptReason) {
				t.Errorf("KeptGroupReason = %q, want it to contain %q", p.KeptGroupReason, tc.keptReason)
			}
			out := map[string][]string{
				"passwd": lines(p.Passwd), "shadow": lines(p.Shadow), "group": lines(p.Group),
				"gshadow": lines(p.Gshadow), "subuid": lines(p.Subuid), "subgid": lines(p.Subgid),
			}
			for name, b := range f.Sudoers {
				if nb, ok := p.SudoersWrite[name]; ok {
					b = nb
				}
				for _, l := range lines(b) {
					out["sudoers"] = append(out["sudoers"], name+":"+l)
				}
			}
			for _, w := range tc.want {
				file, line, _ := strings.Cut(w, ":")
				if !slices.Contains(out[file], line) {
					t.Errorf("%s: missing line %q", file, line)
				}
			}
			for _, g := range tc.gone {
				file, line, _ := strings.Cut(g, ":")
				if slices.Contains(out[file], line) {
					t.Errorf("%s: line %q should be gone", file, line)
				}
			}
			if tc.message != "" && !slices.ContainsFunc(p.Messages, func(m string) bool { return strings.Contains(m, tc.message) }) {
				t.Errorf("no message containing %q in:\n%s", tc.message, strings.Join(p.Messages, "\n"))
			}
			var written []string
			for name := range p.SudoersWrite {
				written = append(written, name)
			}
			if !slices.Equal(written, tc.sudoersWrite) || !slices.Equal(p.SudoersRemove, tc.sudoersRemove) {
				t.Errorf("sudoers write %v remove %v, want write %v remove %v", written, p.SudoersRemove, tc.sudoersWrite, tc.sudoersRemove)
			}
			var mentions []string
			for _, m := range p.SudoersMentions {
				mentions = append(mentions, m.String())
			}
			if !slices.Equal(mentions, tc.mentions) {
				t.Errorf("mentions = %q, want %q", mentions, tc.mentions)
			}
			if tc.golden != "" {
				checkGolden(t, filepath.Join("testdata", tc.golden), report(f, p))
			}
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (rerun with -update after checking):\n%s", path, Diff(path, want, []byte(got)))
	}
}

// TestUnchangedIsIdentical checks that files the plan does not change are
// returned as they came (no reformatting, nil stays nil).
func TestUnchangedIsIdentical(t *testing.T) {
	f := loadFixture(t, "ubuntu2404")
	p, err := RemoveUser(f, "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	if p.Present || len(p.Changed) != 0 || p.SudoersWrite != nil || p.SudoersRemove != nil || p.UID != -1 || p.GID != -1 {
		t.Fatalf("plan for absent user changes something: %+v", p)
	}
	for _, pair := range [][2][]byte{{f.Passwd, p.Passwd}, {f.Shadow, p.Shadow}, {f.Group, p.Group}, {f.Gshadow, p.Gshadow}, {f.Subuid, p.Subuid}, {f.Subgid, p.Subgid}} {
		if &pair[0][0] != &pair[1][0] {
			t.Errorf("unchanged file was copied")
		}
	}
	if !slices.Equal(p.Messages, []string{"user ubuntu not present: nothing to remove"}) {
		t.Errorf("messages = %q", p.Messages)
	}
}

func TestRefusals(t *testing.T) {
	base := loadFixture(t, "debian12")
	withPasswd := func(line string) Files {
		f := base
		f.Passwd = append(append([]byte{}, f.Passwd...), line+"\n"...)
		return f
	}
	withDefs := func(defs string) Files {
		f := base
		f.LoginDefs = []byte(defs)
		return f
	}
	tests := []struct {
		name, user string
		files      Files
		want       string
	}{
		{"root", "root", base, "refusing to remove root"},
		{"uid 0 under another name", "toor", withPasswd("toor:x:0:0:root:/root:/bin/bash"), "UID 0"},
		{"system account", "daemon", base, "system account (below UID_MIN 1000)"},
		{"package system user", "_chrony", base, "UID 102 is a system account"},
		{"nobody", "nobody", base, "above UID_MAX 60000"},
		{"UID_MIN from login.defs", "packer", withDefs("# UID_MIN 500\nUID_MIN\t\t2000\n"), "below UID_MIN 2000"},
		{"UID_MIN in hex", "packer", withDefs("UID_MIN 0x7d0\n"), "below UID_MIN 2000"},
		{"bad UID_MIN", "packer", withDefs("UID_MIN lots\n"), `bad UID_MIN "lots"`},
		{"UID_MIN above UID_MAX", "packer", withDefs("UID_MIN 5000\nUID_MAX 4000\n"), "UID_MIN 5000 is above UID_MAX 4000"},
		{"malformed passwd line", "bob", withPasswd("bob:x:1005:1005::/home/bob"), "has 6 fields, want 7"},
		{"bad UID", "bob", withPasswd("bob:x:10x:1005::/home/bob:/bin/sh"), "bad UID"},
		{"bad GID", "bob", withPasswd("bob:x:1005:-1::/home/bob:/bin/sh"), "bad GID"},
		{"no passwd", "packer", Files{Group: base.Group}, "/etc/passwd contents are required"},
		{"empty name", "", base, "empty user name"},
		{"upper case", "Packer", base, "invalid user name"},
		{"space", "pack er", base, "invalid user name"},
		{"colon", "pack:er", base, "invalid user name"},
		{"slash", "../packer", base, "invalid user name"},
		{"newline", "packer\n", base, "invalid user name"},
		{"leading digit", "1packer", base, "invalid user name"},
		{"too long", strings.Repeat("p", 33), base, "longer than 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := RemoveUser(tc.files, tc.user)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RemoveUser(%q) = %v, %v; want error containing %q", tc.user, p, err, tc.want)
			}
		})
	}
}

func TestValidUserName(t *testing.T) {
	for _, name := range []string{"packer", "_chrony", "packer-ci", "packer2", "a", "_", "machine$", strings.Repeat("a", 32)} {
		if err := ValidUserName(name); err != nil {
			t.Errorf("ValidUserName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "Packer", "2packer", "-packer", "pa$cker", "packer$$", "pack.er", "pack er", "packer\t", "pa:cker", "a/b", "packer\n", "pàcker", strings.Repeat("a", 33)} {
		if err := ValidUserName(name); err == nil {
			t.Errorf("ValidUserName(%q) = nil, want error", name)
		}
	}
}

func TestUIDRange(t *testing.T) {
	tests := []struct {
		defs     string
		min, max int
	}{
		{"", 1000, 60000},
		{"#UID_MIN 5\n# UID_MAX 6\n", 1000, 60000},
		{"UID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n", 1000, 60000},
		{"UID_MIN 500\nUID_MIN 2000 # the last one wins\n", 2000, 60000},
		{"UID_MAX \"30000\"\n", 1000, 30000},
		{"UID_MIN 0x3e8\nUID_MAX 0165140\n", 1000, 60000},
		{"UID_MIN\nSYS_UID_MIN 100\n", 1000, 60000},
	}
	for _, tc := range tests {
		min, max, err := uidRange([]byte(tc.defs))
		if err != nil || min != tc.min || max != tc.max {
			t.Errorf("uidRange(%q) = %d, %d, %v; want %d, %d", tc.defs, min, max, err, tc.min, tc.max)
		}
	}
}

func TestRemoveMember(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"packer", ""},
		{"packer,bob", "bob"},
		{"bob,packer", "bob"},
		{"bob,packer,carol", "bob,carol"},
		{"packer,bob,packer", "bob"},
		{"packer,packer", ""},
		{"bob, packer ,carol", "bob,carol"},
		{"bob,,packer,", "bob,,"}, // pre-existing empty entries are not ours to fix
		{"packer2,packer-ci,xpacker", "packer2,packer-ci,xpacker"},
		{"bob", "bob"},
	}
	for _, tc := range tests {
		got, removed := removeMember(tc.in, "packer")
		if got != tc.want || removed != (got != tc.in) {
			t.Errorf("removeMember(%q) = %q, %v; want %q", tc.in, got, removed, tc.want)
		}
	}
}

func TestEditLinesKeepsFinalNewline(t *testing.T) {
	drop := func(_ int, l string) (string, bool) { return l, l != "x" }
	tests := []struct{ in, want string }{
		{"a\nx\nb\n", "a\nb\n"},
		{"a\nx\nb", "a\nb"},
		{"a\nx", "a"},
		{"x\n", ""},
		{"x", ""},
		{"\n\nx\n", "\n\n"},
		{"a\r\nx\n", "a\r\n"},
	}
	for _, tc := range tests {
		if got := string(editLines([]byte(tc.in), drop)); got != tc.want {
			t.Errorf("editLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if editLines(nil, drop) != nil {
		t.Error("editLines(nil) != nil")
	}
}
