package accounts

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkPlan verifies the properties every successful plan must have,
// whatever the input:
//
//   - an absent file stays absent;
//   - the output is the input with lines deleted or, in group and gshadow,
//     with the user taken out of member/admin lists; every input line that
//     does not mention the user is in the output, unchanged and in order;
//     every changed output line comes from an input line that named the user;
//   - the final newline (or its absence) is kept;
//   - no record in the output keeps the user as its key (except a group
//     named like the user that the plan says it kept) or as a group
//     member/administrator, and subuid/subgid keep no range keyed by its
//     UID unless another account shares that UID;
//   - Changed lists exactly the files whose contents changed;
//   - sudoers: only the cloud-init drop-in is edited, only by deleting lines
//     that name the user, blank lines, or continuations of deleted rules,
//     and no "# User rules for <user>" block is left.
func checkPlan(t testing.TB, in Files, user string, p *Plan) {
	t.Helper()
	if p.User != user {
		t.Errorf("Plan.User = %q, want %q", p.User, user)
	}
	uidKey := ""
	if p.Present {
		uidKey = strconv.Itoa(p.UID)
		if sharedUID(in.Passwd, user, uidKey) {
			uidKey = ""
		}
	}
	type file struct {
		name     string
		old, new []byte
		members  []int // indices of member-list fields (group-like files)
		numKey   string
	}
	files := []file{
		{"passwd", in.Passwd, p.Passwd, nil, ""},
		{"shadow", in.Shadow, p.Shadow, nil, ""},
		{"group", in.Group, p.Group, []int{3}, ""},
		{"gshadow", in.Gshadow, p.Gshadow, []int{2, 3}, ""},
		{"subuid", in.Subuid, p.Subuid, nil, uidKey},
		{"subgid", in.Subgid, p.Subgid, nil, uidKey},
	}
	var changed []string
	for _, f := range files {
		if f.old == nil && f.new != nil {
			t.Errorf("%s: absent file got contents %q", f.name, f.new)
		}
		if string(f.old) != string(f.new) {
			changed = append(changed, f.name)
		}
		if got, ok := p.File(f.name); !ok || string(got) != string(f.new) {
			t.Errorf("Plan.File(%q) disagrees with the field", f.name)
		}
		if len(f.new) > 0 && strings.HasSuffix(string(f.new), "\n") != strings.HasSuffix(string(f.old), "\n") {
			t.Errorf("%s: final newline not preserved: %q -> %q", f.name, f.old, f.new)
		}
		keptGroup := f.members != nil && p.RemovedGroup == ""
		checkAccountLines(t, f.name, f.old, f.new, user, f.numKey, f.members, keptGroup)
	}
	if strings.Join(changed, ",") != strings.Join(p.Changed, ",") {
		t.Errorf("Changed = %v, want %v", p.Changed, changed)
	}
	checkSudoers(t, in.Sudoers, user, p)
	checkIdempotent(t, in, p)
}

// checkIdempotent runs RemoveUser again on the planned contents: it must
// find nothing left to do.
func checkIdempotent(t testing.TB, in Files, p *Plan) {
	t.Helper()
	again := Files{Passwd: p.Passwd, Shadow: p.Shadow, Group: p.Group, Gshadow: p.Gshadow,
		Subuid: p.Subuid, Subgid: p.Subgid, LoginDefs: in.LoginDefs}
	for name, b := range in.Sudoers {
		if nb, ok := p.SudoersWrite[name]; ok {
			b = nb
		}
		if !slices.Contains(p.SudoersRemove, name) {
			if again.Sudoers == nil {
				again.Sudoers = map[string][]byte{}
			}
			again.Sudoers[name] = b
		}
	}
	p2, err := RemoveUser(again, p.User)
	if err != nil {
		t.Fatalf("second RemoveUser: %v", err)
	}
	if p2.Present || len(p2.Changed) > 0 || len(p2.SudoersWrite) > 0 || len(p2.SudoersRemove) > 0 {
		t.Fatalf("second RemoveUser still changes %v, sudoers write %q remove %v", p2.Changed, p2.SudoersWrite, p2.SudoersRemove)
	}
}

func sharedUID(passwd []byte, user, uid string) bool {
	lines, _ := splitLines(passwd)
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] != user && !isSpecial(l) && f[2] == uid {
			return true
		}
	}
	return false
}

func checkAccountLines(t testing.TB, name string, old, new []byte, user, numKey string, members []int, keptGroup bool) {
	t.Helper()
	in, _ := splitLines(old)
	out, _ := splitLines(new)
	mentions := func(l string) bool {
		return strings.Contains(l, user) || (numKey != "" && firstField(l) == numKey)
	}
	// Align: walk the input; lines not mentioning the user must be the next
	// output line; lines mentioning it may be kept, edited or deleted.
	j := 0
	for i, l := range in {
		switch {
		case j < len(out) && out[j] == l:
			j++
		case !mentions(l):
			t.Fatalf("%s: input line %d %q (not naming %s) is missing or changed in output\ninput:\n%s\noutput:\n%s", name, i+1, l, user, old, new)
		case j < len(out) && members != nil && isMemberEdit(l, out[j], user, members):
			j++
		case isSpecial(l) || !(firstField(l) == user && !keptGroup || numKey != "" && firstField(l) == numKey):
			t.Fatalf("%s: input line %d %q was deleted or changed, but it is not a record of %s\ninput:\n%s\noutput:\n%s", name, i+1, l, user, old, new)
		}
	}
	if j != len(out) {
		t.Fatalf("%s: output line %q does not come from the input\ninput:\n%s\noutput:\n%s", name, out[j], old, new)
	}
	for _, l := range out {
		if isSpecial(l) {
			continue
		}
		fields := strings.Split(l, ":")
		if fields[0] == user && !keptGroup {
			t.Errorf("%s: output still has a record for %s: %q", name, user, l)
		}
		if numKey != "" && fields[0] == numKey {
			t.Errorf("%s: output still has a range keyed by UID %s: %q", name, numKey, l)
		}
		if members != nil && len(fields) == 4 {
			for _, k := range members {
				for _, m := range strings.Split(fields[k], ",") {
					if strings.TrimSpace(m) == user {
						t.Errorf("%s: output still lists %s in %q", name, user, l)
					}
				}
			}
		}
	}
}

// isMemberEdit reports whether out is in with user taken out of the
// comma-separated lists in the given fields, all else equal.
func isMemberEdit(in, out, user string, members []int) bool {
	fi, fo := strings.Split(in, ":"), strings.Split(out, ":")
	if isSpecial(in) || len(fi) != 4 || len(fo) != 4 {
		return false
	}
	for k := range fi {
		want := fi[k]
		for _, m := range members {
			if m == k {
				var kept []string
				for _, it := range strings.Split(fi[k], ",") {
					if strings.TrimSpace(it) != user {
						kept = append(kept, it)
					}
				}
				want = strings.Join(kept, ",")
			}
		}
		if fo[k] != want {
			return false
		}
	}
	return true
}

func checkSudoers(t testing.TB, in map[string][]byte, user string, p *Plan) {
	t.Helper()
	for name := range p.SudoersWrite {
		if name != CloudInitSudoers {
			t.Errorf("sudoers: plan rewrites %s", name)
		}
	}
	for _, name := range p.SudoersRemove {
		if name != CloudInitSudoers {
			t.Errorf("sudoers: plan deletes %s", name)
		}
	}
	old, ok := in[CloudInitSudoers]
	if !ok {
		return
	}
	removed := len(p.SudoersRemove) > 0
	newc, written := p.SudoersWrite[CloudInitSudoers]
	if !written && !removed {
		newc = old
	}
	if removed && written {
		t.Errorf("sudoers: %s both rewritten and deleted", CloudInitSudoers)
	}
	inl, _ := splitLines(old)
	out, _ := splitLines(newc)
	j := 0
	prevDeletedCont := false
	for i, l := range inl {
		if j < len(out) && out[j] == l {
			j++
			prevDeletedCont = false
			continue
		}
		deletable := strings.TrimSpace(l) == "" || strings.Contains(l, user) || prevDeletedCont
		if removed && strings.HasPrefix(l, "# Created by cloud-init v. ") {
			deletable = true
		}
		if !deletable {
			t.Fatalf("sudoers: line %d %q of %s was deleted but does not name %s\ninput:\n%s\noutput:\n%s", i+1, l, CloudInitSudoers, user, old, newc)
		}
		prevDeletedCont = strings.HasSuffix(l, "\\")
	}
	if j != len(out) {
		t.Fatalf("sudoers: output line %q does not come from the input", out[j])
	}
	if len(newc) > 0 && strings.HasSuffix(string(newc), "\n") != strings.HasSuffix(string(old), "\n") {
		t.Errorf("sudoers: final newline not preserved: %q -> %q", old, newc)
	}
	for _, l := range out {
		if isRulesHeader(l, user) {
			t.Errorf("sudoers: rules header for %s left: %q", user, l)
		}
	}
}
