package accounts

// Run a fuzzer with an anchored name (FuzzRemoveUser is a prefix of
// FuzzRemoveUserSudoers):
//
//	go test -run=NONE -fuzz='^FuzzRemoveUser$' -fuzztime=60s ./internal/accounts/
//	go test -run=NONE -fuzz='^FuzzRemoveUserSudoers$' -fuzztime=60s ./internal/accounts/
//	go test -run=NONE -fuzz='^FuzzDiff$' -fuzztime=60s ./internal/accounts/
//
// Inputs worth keeping are copied from the fuzz cache to testdata/fuzz.

import (
	"strings"
	"testing"
)

// FuzzRemoveUser feeds arbitrary account files to RemoveUser: it must never
// panic, and every plan it returns must satisfy checkPlan (lines not naming
// the user are never changed, the user is gone from every record and list,
// a second run finds nothing to do).
func FuzzRemoveUser(f *testing.F) {
	for _, dir := range []string{"debian12", "ubuntu2404"} {
		fx := loadFixture(f, dir)
		for _, user := range []string{"packer", "packer2", "xpacker", "deploy"} {
			f.Add(fx.Passwd, fx.Shadow, fx.Group, fx.Gshadow, fx.Subuid, fx.LoginDefs, user)
		}
	}
	f.Add([]byte("packer:x:1000:1000::/home/packer:/bin/sh\nbob:x:1001:1000::/:/bin/sh"), []byte("packer"),
		[]byte("packer:x:1000:bob\nsudo:x:27:packer,,packer ,bob,\n+:::packer\n#x:x:1:packer\nodd:packer"),
		[]byte("packer:!:packer:\nsudo:*:packer:packer"), []byte("1000:1:2\npacker:1:2\n1000"), []byte("UID_MIN 0\n"), "packer")
	f.Add([]byte("packer:x:1000:1000::/h:/bin/sh\n"), []byte(nil), []byte("packer:x:1000:\n"), []byte("packer:x::\n"), []byte(nil), []byte(nil), "packer")
	f.Add([]byte(""), []byte("\n\n"), []byte("a:b:c:packer\r\n"), []byte(":::"), []byte("\n"), []byte("UID_MAX 0x"), "p")

	f.Fuzz(func(t *testing.T, passwd, shadow, group, gshadow, subuid, loginDefs []byte, user string) {
		if ValidUserName(user) != nil {
			if _, err := RemoveUser(Files{Passwd: passwd}, user); err == nil {
				t.Fatalf("RemoveUser accepted invalid name %q", user)
			}
			user = "packer"
		}
		in := Files{Passwd: passwd, Shadow: shadow, Group: group, Gshadow: gshadow, Subuid: subuid, Subgid: subuid, LoginDefs: loginDefs}
		p, err := RemoveUser(in, user)
		if err != nil {
			return
		}
		checkPlan(t, in, user, p)
	})
}

// FuzzRemoveUserSudoers feeds arbitrary sudoers drop-ins to RemoveUser:
// only the cloud-init drop-in may change, only lines naming the user (and
// their blank separators and continuations) may go, no rules block for the
// user is left, and other drop-ins are never edited.
func FuzzRemoveUserSudoers(f *testing.F) {
	for _, dir := range []string{"debian12", "ubuntu2404"} {
		fx := loadFixture(f, dir)
		for _, user := range []string{"packer", "packer2"} {
			f.Add(fx.Sudoers[CloudInitSudoers], fx.Sudoers["50-packer-ci"], user)
		}
	}
	f.Add([]byte(header+"\n# User rules for packer\npacker ALL=(ALL) \\\n NOPASSWD:ALL\nbob ALL=ALL\n\n# user rules for packer\n"), []byte("%packer ALL=ALL\n#1000 ALL=ALL"), "packer")
	f.Add([]byte("# User rules for packer\n\n# User rules for packer\npacker\n\n\n"), []byte("packer"), "packer")

	f.Fuzz(func(t *testing.T, cloudInit, other []byte, user string) {
		if ValidUserName(user) != nil || user == "root" {
			user = "packer"
		}
		in := Files{
			Passwd:  []byte("root:x:0:0::/root:/bin/sh\n" + user + ":x:1000:1000::/home/" + user + ":/bin/sh\n"),
			Sudoers: map[string][]byte{CloudInitSudoers: cloudInit, "other": other},
		}
		p, err := RemoveUser(in, user)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, in, user, p)
		for _, m := range p.SudoersMentions {
			if !strings.Contains(m.Text, user) && !strings.Contains(m.Text, "#1000") {
				t.Errorf("mention %v does not name %s", m, user)
			}
		}
	})
}

// FuzzDiff checks that Diff never panics and that its output, applied as a
// patch to old, gives new.
func FuzzDiff(f *testing.F) {
	fx := loadFixture(f, "debian12")
	p, err := RemoveUser(fx, "packer")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fx.Group, p.Group)
	f.Add([]byte("a\nb"), []byte("a\nb\n"))
	f.Add([]byte("x\n1\n2\n3\n4\n5\n6\n7\ny\n"), []byte("1\n2\n3\n4\n5\n6\n7\n"))
	f.Add([]byte(""), []byte("\n"))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		checkPatch(t, old, new, Diff("f", old, new))
	})
}
