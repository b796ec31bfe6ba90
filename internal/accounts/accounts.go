// Package accounts computes how to remove one login account (the image
// build user, e.g. "packer") from a Linux guest's account files, so that the
// image boots later as a fresh cloud-init first boot.
//
// The package is pure: it takes file contents and returns new contents. It
// does no I/O and knows nothing of Packer or SSH. Only the lines that name
// the user change; every other byte (comments, blank lines, NIS "+" lines,
// malformed lines, users and groups added by packages during provisioning,
// the final newline or its absence) is kept as it was.
package accounts

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// CloudInitSudoers is the drop-in under /etc/sudoers.d where cloud-init
// writes the "sudo:" rules of the users it creates.
const CloudInitSudoers = "90-cloud-init-users"

// Default regular-user UID range, used when /etc/login.defs does not set
// UID_MIN or UID_MAX (the defaults of shadow's useradd).
const (
	DefaultUIDMin = 1000
	DefaultUIDMax = 60000
)

// Files holds the current contents of the guest's account files. A nil
// slice means the file does not exist. Passwd is required.
type Files struct {
	Passwd, Shadow, Group, Gshadow, Subuid, Subgid []byte            // /etc/<name>
	LoginDefs                                      []byte            // /etc/login.defs, for UID_MIN and UID_MAX
	Sudoers                                        map[string][]byte // /etc/sudoers.d/<name> -> contents
}

// Mention is a sudoers line that still names the user after the plan is
// applied. It is reported, never edited.
type Mention struct {
	File string // name under /etc/sudoers.d
	Line int    // 1-based line number in the contents that remain
	Text string // the line
}

// String formats m as "/etc/sudoers.d/<file>:<line>: <text>".
func (m Mention) String() string {
	return fmt.Sprintf("/etc/sudoers.d/%s:%d: %s", m.File, m.Line, m.Text)
}

// Plan is the result of RemoveUser: the new contents of every file and a
// human-readable account of what changes and why.
type Plan struct {
	User    string
	Present bool   // the user has an entry in /etc/passwd
	UID     int    // from /etc/passwd; -1 when !Present
	GID     int    // primary GID from /etc/passwd; -1 when !Present
	Home    string // home directory from /etc/passwd (not removed by this plan)

	// New contents of the account files: the input slice itself when
	// unchanged, nil when the file is absent.
	Passwd, Shadow, Group, Gshadow, Subuid, Subgid []byte
	// Changed names the account files whose contents change, in the order
	// passwd, shadow, group, gshadow, subuid, subgid. See File.
	Changed []string

	RemovedGroup    string // the user's personal group, removed; "" if none removed
	KeptGroupReason string // why a group named like the user was kept; "" otherwise

	SudoersWrite    map[string][]byte // drop-ins to rewrite with new contents
	SudoersRemove   []string          // drop-ins to delete (no rules left)
	SudoersMentions []Mention         // lines still naming the user, left untouched

	Messages []string // report lines, in order
}

// File returns the new contents of the account file name ("passwd",
// "shadow", "group", "gshadow", "subuid" or "subgid"); ok is false for any
// other name.
func (p *Plan) File(name string) (contents []byte, ok bool) {
	for _, f := range p.files() {
		if f.name == name {
			return *f.new, true
		}
	}
	return nil, false
}

type planFile struct {
	name string
	new  *[]byte
}

func (p *Plan) files() []planFile {
	return []planFile{
		{"passwd", &p.Passwd}, {"shadow", &p.Shadow}, {"group", &p.Group},
		{"gshadow", &p.Gshadow}, {"subuid", &p.Subuid}, {"subgid", &p.Subgid},
	}
}

var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*[$]?$`)

// ValidUserName reports whether name is a valid user name by the
// Debian/shadow rule: ^[a-z_][a-z0-9_-]*[$]?$, at most 32 characters.
func ValidUserName(name string) error {
	switch {
	case name == "":
		return errors.New("accounts: empty user name")
	case len(name) > 32:
		return fmt.Errorf("accounts: user name %.40q is longer than 32 characters", name)
	case !userNameRE.MatchString(name):
		return fmt.Errorf("accounts: invalid user name %q (want ^[a-z_][a-z0-9_-]*[$]?$)", name)
	}
	return nil
}

// RemoveUser plans the removal of user from the account files in f.
//
// It removes the lines keyed by user (passwd, shadow, subuid, subgid, the
// latter also by numeric UID), removes user from the member lists of every
// group and from the administrator and member lists of gshadow, removes the
// user's personal group when shadow's userdel would (same name, the user's
// primary GID, no other members, no other account's primary group), and
// removes cloud-init's "# User rules for <user>" block from the
// CloudInitSudoers drop-in. Other sudoers lines naming the user are only
// reported.
//
// It refuses invalid names, root, any account with UID 0, and accounts
// outside login.defs' UID_MIN..UID_MAX (system accounts, nobody). A user
// without a passwd entry is not an error: the plan has Present false and
// only scrubs leftovers (shadow, member lists, subordinate ranges, sudo
// rules) that still name it.
func RemoveUser(f Files, user string) (*Plan, error) {
	if err := ValidUserName(user); err != nil {
		return nil, err
	}
	if user == "root" {
		return nil, errors.New("accounts: refusing to remove root")
	}
	if f.Passwd == nil {
		return nil, errors.New("accounts: /etc/passwd contents are required")
	}
	uidMin, uidMax, err := uidRange(f.LoginDefs)
	if err != nil {
		return nil, err
	}

	p := &Plan{User: user, UID: -1, GID: -1}
	primaryOf := map[int][]string{} // GID -> other accounts with it as primary group
	byUID := map[int][]string{}     // UID -> other accounts
	lines, _ := splitLines(f.Passwd)
	for i, line := range lines {
		fields := strings.Split(line, ":")
		if fields[0] != user {
			if len(fields) == 7 && !isSpecial(line) {
				if uid, err := parseID(fields[2]); err == nil {
					byUID[uid] = append(byUID[uid], fields[0])
				}
				if gid, err := parseID(fields[3]); err == nil {
					primaryOf[gid] = append(primaryOf[gid], fields[0])
				}
			}
			continue
		}
		if len(fields) != 7 {
			return nil, fmt.Errorf("accounts: /etc/passwd line %d for %s has %d fields, want 7; refusing to guess", i+1, user, len(fields))
		}
		uid, err := parseID(fields[2])
		if err != nil {
			return nil, fmt.Errorf("accounts: /etc/passwd line %d for %s: bad UID: %v", i+1, user, err)
		}
		gid, err := parseID(fields[3])
		if err != nil {
			return nil, fmt.Errorf("accounts: /etc/passwd line %d for %s: bad GID: %v", i+1, user, err)
		}
		switch {
		case uid == 0:
			return nil, fmt.Errorf("accounts: refusing to remove %s: it has UID 0 (a root account)", user)
		case uid < uidMin:
			return nil, fmt.Errorf("accounts: refusing to remove %s: UID %d is a system account (below UID_MIN %d)", user, uid, uidMin)
		case uid > uidMax:
			return nil, fmt.Errorf("accounts: refusing to remove %s: UID %d is not a regular account (above UID_MAX %d)", user, uid, uidMax)
		}
		if !p.Present {
			p.Present, p.UID, p.GID, p.Home = true, uid, gid, fields[5]
		}
	}
	if p.Present {
		p.say("removing %s (UID %d, GID %d, home %s)", user, p.UID, p.GID, p.Home)
	}

	var n int
	p.Passwd, n = removeKeyed(f.Passwd, user)
	p.sayRemoved("/etc/passwd", n, "entry")
	p.Shadow, n = removeKeyed(f.Shadow, user)
	p.sayRemoved("/etc/shadow", n, "entry")

	p.planGroups(f, primaryOf)

	uidKey := ""
	if p.Present {
		if others := byUID[p.UID]; len(others) > 0 {
			p.say("/etc/subuid, /etc/subgid: kept ranges keyed by UID %d: it is also the UID of %s", p.UID, strings.Join(others, ", "))
		} else {
			uidKey = strconv.Itoa(p.UID)
		}
	}
	p.Subuid, n = removeKeyed(f.Subuid, user, uidKey)
	p.sayRemoved("/etc/subuid", n, "subordinate UID range")
	p.Subgid, n = removeKeyed(f.Subgid, user, uidKey)
	p.sayRemoved("/etc/subgid", n, "subordinate GID range")

	p.planSudoers(f.Sudoers)

	olds := [][]byte{f.Passwd, f.Shadow, f.Group, f.Gshadow, f.Subuid, f.Subgid}
	for i, pf := range p.files() {
		if string(olds[i]) != string(*pf.new) {
			p.Changed = append(p.Changed, pf.name)
		}
	}
	if !p.Present {
		if len(p.Changed) == 0 && len(p.SudoersWrite) == 0 && len(p.SudoersRemove) == 0 {
			p.Messages = append([]string{fmt.Sprintf("user %s not present: nothing to remove", user)}, p.Messages...)
		} else {
			p.Messages = append([]string{fmt.Sprintf("user %s not present in /etc/passwd; removing leftovers that still name it", user)}, p.Messages...)
		}
	}
	return p, nil
}

// planGroups edits /etc/group and /etc/gshadow.
func (p *Plan) planGroups(f Files, primaryOf map[int][]string) {
	user := p.User
	removeGroup := p.decidePersonalGroup(f, primaryOf)

	var edited []string
	p.Group = editLines(f.Group, func(i int, line string) (string, bool) {
		fields := strings.Split(line, ":")
		if isSpecial(line) || len(fields) != 4 {
			p.warnUntouched("/etc/group", i, line)
			return line, true
		}
		if fields[0] == user && removeGroup {
			return line, false
		}
		m, ok := removeMember(fields[3], user)
		if !ok {
			return line, true
		}
		fields[3] = m
		edited = append(edited, fields[0])
		return strings.Join(fields, ":"), true
	})
	if len(edited) > 0 {
		p.say("/etc/group: removed %s from the members of %s", user, strings.Join(edited, ", "))
	}

	edited = nil
	p.Gshadow = editLines(f.Gshadow, func(i int, line string) (string, bool) {
		fields := strings.Split(line, ":")
		if removeGroup && fields[0] == user && !isSpecial(line) {
			return line, false
		}
		if isSpecial(line) || len(fields) != 4 {
			p.warnUntouched("/etc/gshadow", i, line)
			return line, true
		}
		admins, a := removeMember(fields[2], user)
		members, m := removeMember(fields[3], user)
		if !a && !m {
			return line, true
		}
		fields[2], fields[3] = admins, members
		edited = append(edited, fields[0])
		return strings.Join(fields, ":"), true
	})
	if len(edited) > 0 {
		p.say("/etc/gshadow: removed %s from the administrators/members of %s", user, strings.Join(edited, ", "))
	}
	if removeGroup {
		p.RemovedGroup = user
		p.say("/etc/group, /etc/gshadow: removed the personal group %s (GID %d)", user, p.GID)
	}
}

// decidePersonalGroup applies shadow userdel's rule to the group named like
// the user: it goes only if its GID is the user's primary GID, it has no
// other members (or gshadow administrators), and no other account has it as
// primary group. It records why a group is kept.
func (p *Plan) decidePersonalGroup(f Files, primaryOf map[int][]string) bool {
	user := p.User
	kept := func(format string, args ...any) bool {
		p.KeptGroupReason = fmt.Sprintf(format, args...)
		p.say("/etc/group: kept the group %s: %s", user, p.KeptGroupReason)
		return false
	}
	glines, _ := splitLines(f.Group)
	found := false
	for _, line := range glines {
		fields := strings.Split(line, ":")
		if fields[0] != user {
			continue
		}
		found = true
		if !p.Present {
			return kept("%s has no /etc/passwd entry, so the group cannot be checked to be its personal group", user)
		}
		if len(fields) != 4 {
			return kept("its /etc/group line has %d fields, want 4", len(fields))
		}
		if gid, err := parseID(fields[2]); err != nil || gid != p.GID {
			return kept("its GID %q is not %s's primary GID %d", fields[2], user, p.GID)
		}
		if others := otherMembers(fields[3], user); len(others) > 0 {
			return kept("it has other members: %s", strings.Join(others, ", "))
		}
	}
	if !found {
		return false
	}
	slines, _ := splitLines(f.Gshadow)
	for _, line := range slines {
		fields := strings.Split(line, ":")
		if fields[0] != user || len(fields) != 4 {
			continue
		}
		if others := append(otherMembers(fields[2], user), otherMembers(fields[3], user)...); len(others) > 0 {
			return kept("/etc/gshadow lists other administrators/members: %s", strings.Join(others, ", "))
		}
	}
	if others := primaryOf[p.GID]; len(others) > 0 {
		return kept("it is the primary group of %s", strings.Join(others, ", "))
	}
	return true
}

// removeKeyed removes the lines whose first field equals one of the
// non-empty keys and returns the new contents and the number removed.
func removeKeyed(b []byte, keys ...string) ([]byte, int) {
	n := 0
	out := editLines(b, func(_ int, line string) (string, bool) {
		k := firstField(line)
		for _, key := range keys {
			if key != "" && k == key {
				n++
				return line, false
			}
		}
		return line, true
	})
	return out, n
}

func (p *Plan) say(format string, args ...any) {
	p.Messages = append(p.Messages, fmt.Sprintf(format, args...))
}

func (p *Plan) sayRemoved(path string, n int, what string) {
	switch {
	case n == 1:
		p.say("%s: removed 1 %s of %s", path, what, p.User)
	case n > 1:
		p.say("%s: removed %d %s lines of %s", path, n, what, p.User)
	}
}

// warnUntouched reports a line left alone because it is a comment, an NIS
// line or malformed, although it names the user.
func (p *Plan) warnUntouched(path string, i int, line string) {
	if namesUser(line, p.User) {
		p.say("%s: line %d names %s but is a comment, NIS or malformed line; left untouched: %s", path, i+1, p.User, line)
	}
}

// parseID parses a decimal UID or GID.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err
}

// uidRange reads UID_MIN and UID_MAX from login.defs contents (the last
// setting wins, as in shadow), with the shadow defaults when unset.
func uidRange(defs []byte) (min, max int, err error) {
	min, max = DefaultUIDMin, DefaultUIDMax
	for _, line := range strings.Split(string(defs), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || (fields[0] != "UID_MIN" && fields[0] != "UID_MAX") {
			continue
		}
		// shadow reads numbers with strtol base 0: decimal, 0x hex, 0 octal.
		v, perr := strconv.ParseUint(strings.Trim(fields[1], `"`), 0, 32)
		if perr != nil {
			return 0, 0, fmt.Errorf("accounts: /etc/login.defs: bad %s %q", fields[0], fields[1])
		}
		if fields[0] == "UID_MIN" {
			min = int(v)
		} else {
			max = int(v)
		}
	}
	if min > max {
		return 0, 0, fmt.Errorf("accounts: /etc/login.defs: UID_MIN %d is above UID_MAX %d", min, max)
	}
	return min, max, nil
}
