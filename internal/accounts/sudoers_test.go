package accounts

import (
	"slices"
	"testing"
)

// header is what cloud-init's util.make_header() writes first.
const header = "# Created by cloud-init v. 24.4-0ubuntu1~24.04.2 on Thu, 26 Nov 2026 10:00:00 +0000\n"

func TestSudoers(t *testing.T) {
	const passwd = "root:x:0:0:root:/root:/bin/bash\n" +
		"packer:x:1000:1000::/home/packer:/bin/bash\n" +
		"packer2:x:1001:1001::/home/packer2:/bin/bash\n"
	tests := []struct {
		name     string
		files    map[string]string
		write    map[string]string // expected SudoersWrite
		remove   []string
		mentions []string
	}{
		{
			name:   "single rule string: file removed",
			files:  map[string]string{CloudInitSudoers: header + "\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n"},
			remove: []string{CloudInitSudoers},
		},
		{
			name: "list of rules: all rule lines go",
			files: map[string]string{CloudInitSudoers: header +
				"\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\npacker ALL=(root) NOPASSWD:/usr/bin/apt-get\npacker \n"},
			remove: []string{CloudInitSudoers},
		},
		{
			name: "two users, packer first",
			files: map[string]string{CloudInitSudoers: header +
				"\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n" +
				"\n# User rules for packer2\npacker2 ALL=(ALL) NOPASSWD:ALL\n"},
			write: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=(ALL) NOPASSWD:ALL\n"},
		},
		{
			name: "two users, packer last",
			files: map[string]string{CloudInitSudoers: header +
				"\n# User rules for packer2\npacker2 ALL=(ALL) NOPASSWD:ALL\n" +
				"\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n"},
			write: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=(ALL) NOPASSWD:ALL\n"},
		},
		{
			name: "appended twice with different rules (cloud-init only skips identical blocks)",
			files: map[string]string{CloudInitSudoers: header +
				"\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n" +
				"\n# User rules for packer2\npacker2 ALL=(ALL) ALL\n" +
				"\n# User rules for packer\npacker ALL=(ALL) ALL\n"},
			write: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=(ALL) ALL\n"},
		},
		{
			name:   "very old cloud-init: lower case, no header, blank line after",
			files:  map[string]string{CloudInitSudoers: "# user rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n\n"},
			remove: []string{CloudInitSudoers},
		},
		{
			name:   "sudoers line continuation belongs to the rule",
			files:  map[string]string{CloudInitSudoers: header + "\n# User rules for packer\npacker ALL=(ALL) \\\n    NOPASSWD: ALL\n"},
			remove: []string{CloudInitSudoers},
		},
		{
			name: "hand-added lines are kept and reported",
			files: map[string]string{CloudInitSudoers: header +
				"\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\nbob ALL=(ALL) ALL\nDefaults:packer !requiretty\n"},
			write:    map[string]string{CloudInitSudoers: header + "bob ALL=(ALL) ALL\nDefaults:packer !requiretty\n"},
			mentions: []string{"/etc/sudoers.d/90-cloud-init-users:3: Defaults:packer !requiretty"},
		},
		{
			name:  "no final newline",
			files: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=ALL\n\n# User rules for packer\npacker ALL=ALL"},
			write: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=ALL"},
		},
		{
			name:  "no block for the user: untouched",
			files: map[string]string{CloudInitSudoers: header + "\n# User rules for packer2\npacker2 ALL=ALL\n"},
		},
		{
			name: "other drop-ins are reported, never edited",
			files: map[string]string{
				"10-builders": "# packer may build\nUser_Alias BUILDERS = bob, packer\nBUILDERS ALL=(ALL) ALL\n",
				"20-group":    "%packer ALL=(ALL) NOPASSWD: ALL\n",
				"30-uid":      "#1000 ALL=(ALL) ALL\n#1001 ALL=(ALL) ALL\n",
				"40-others":   "packer2 ALL=ALL\npacker-ci ALL=ALL\nxpacker ALL=ALL\nDefaults:packer.old !lecture\n",
				"50-packer":   "packer\tALL=(ALL:ALL) ALL\nRunas_Alias R = root,packer\n",
			},
			mentions: []string{
				"/etc/sudoers.d/10-builders:2: User_Alias BUILDERS = bob, packer",
				"/etc/sudoers.d/20-group:1: %packer ALL=(ALL) NOPASSWD: ALL",
				"/etc/sudoers.d/30-uid:1: #1000 ALL=(ALL) ALL",
				"/etc/sudoers.d/50-packer:1: packer\tALL=(ALL:ALL) ALL",
				"/etc/sudoers.d/50-packer:2: Runas_Alias R = root,packer",
			},
		},
		{
			name: "the cloud-init name matters: a copy elsewhere is only reported",
			files: map[string]string{
				"91-copy": header + "\n# User rules for packer\npacker ALL=(ALL) NOPASSWD:ALL\n",
			},
			mentions: []string{"/etc/sudoers.d/91-copy:4: packer ALL=(ALL) NOPASSWD:ALL"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Files{Passwd: []byte(passwd), Sudoers: map[string][]byte{}}
			for name, s := range tc.files {
				f.Sudoers[name] = []byte(s)
			}
			p, err := RemoveUser(f, "packer")
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, f, "packer", p)
			if len(p.SudoersWrite) != len(tc.write) {
				t.Errorf("SudoersWrite = %q, want %q", p.SudoersWrite, tc.write)
			}
			for name, want := range tc.write {
				if got := string(p.SudoersWrite[name]); got != want {
					t.Errorf("new %s:\n%s", name, Diff(name, []byte(want), []byte(got)))
				}
			}
			if !slices.Equal(p.SudoersRemove, tc.remove) {
				t.Errorf("SudoersRemove = %q, want %q", p.SudoersRemove, tc.remove)
			}
			var mentions []string
			for _, m := range p.SudoersMentions {
				mentions = append(mentions, m.String())
			}
			if !slices.Equal(mentions, tc.mentions) {
				t.Errorf("mentions:\n got %q\nwant %q", mentions, tc.mentions)
			}
		})
	}
}

func TestSudoersNames(t *testing.T) {
	yes := []string{"packer ALL=ALL", " packer ALL=ALL", "%packer ALL=ALL", "Defaults:packer !lecture", "Defaults>packer x",
		"User_Alias A = bob,packer", "bob ALL=(packer) ALL", "#1000 ALL=ALL", "%#1000 ALL=ALL", "bob ALL=ALL # for packer"}
	no := []string{"", "# packer", "  # User rules for packer", "packer2 ALL=ALL", "packer-ci ALL=ALL", "xpacker ALL=ALL",
		"packer.bak ALL=ALL", "packer$ ALL=ALL", "#10001 ALL=ALL", "bob ALL=/usr/bin/id 1000", "PACKER ALL=ALL", "pâcker", "packerü ALL=ALL"}
	for _, l := range yes {
		if !sudoersNames(l, "packer", 1000) {
			t.Errorf("sudoersNames(%q) = false", l)
		}
	}
	for _, l := range no {
		if sudoersNames(l, "packer", 1000) {
			t.Errorf("sudoersNames(%q) = true", l)
		}
	}
}
