package accounts

import (
	"sort"
	"strconv"
	"strings"
)

// planSudoers removes cloud-init's rule blocks for the user from the
// CloudInitSudoers drop-in and reports every remaining line, in any
// drop-in, that still names the user.
func (p *Plan) planSudoers(files map[string][]byte) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		content := files[name]
		if name == CloudInitSudoers {
			out, blocks, empty := removeCloudInitRules(content, p.User)
			if blocks > 0 && empty {
				p.SudoersRemove = append(p.SudoersRemove, name)
				p.say("/etc/sudoers.d/%s: removed the cloud-init rules for %s; no rules left, delete the file", name, p.User)
				continue
			}
			if blocks > 0 {
				if p.SudoersWrite == nil {
					p.SudoersWrite = map[string][]byte{}
				}
				p.SudoersWrite[name] = out
				p.say("/etc/sudoers.d/%s: removed the cloud-init rules for %s", name, p.User)
				content = out
			}
		}
		lines, _ := splitLines(content)
		for i, line := range lines {
			if sudoersNames(line, p.User, p.UID) {
				m := Mention{File: name, Line: i + 1, Text: line}
				p.SudoersMentions = append(p.SudoersMentions, m)
				p.say("%s still names %s; left untouched, review it", m, p.User)
			}
		}
	}
}

// removeCloudInitRules removes every block that cloud-init's
// write_sudo_rules appended for user:
//
//	<blank line>
//	# User rules for <user>
//	<user> <rule>
//	<user> <rule>...
//
// The header is matched case-insensitively (very old cloud-init wrote
// "# user rules for", followed rather than preceded by the blank line). The
// block's rule lines are the following lines whose first word is the user,
// plus sudoers continuation lines (after a trailing backslash); the first
// other line ends the block and is kept. One separating blank line goes
// with the block. empty reports that only blank lines and cloud-init's
// "# Created by cloud-init" header remain.
func removeCloudInitRules(content []byte, user string) (out []byte, blocks int, empty bool) {
	lines, _ := splitLines(content)
	drop := make([]bool, len(lines))
	blank := func(i int) bool { return i >= 0 && i < len(lines) && strings.TrimSpace(lines[i]) == "" }
	for i := 0; i < len(lines); i++ {
		if !isRulesHeader(lines[i], user) {
			continue
		}
		blocks++
		drop[i] = true
		before := i - 1
		cont := false
		for i+1 < len(lines) && (cont || firstWord(lines[i+1]) == user) {
			i++
			drop[i] = true
			cont = strings.HasSuffix(lines[i], "\\")
		}
		switch {
		case blank(before):
			drop[before] = true
		case blank(i + 1):
			drop[i+1] = true
		}
	}
	if blocks == 0 {
		return content, 0, false
	}
	empty = true
	for i, line := range lines {
		if !drop[i] && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "# Created by cloud-init v. ") {
			empty = false
		}
	}
	return editLines(content, func(i int, line string) (string, bool) { return line, !drop[i] }), blocks, empty
}

// isRulesHeader reports whether line is cloud-init's "# User rules for
// <user>" comment.
func isRulesHeader(line, user string) bool {
	const prefix = "# user rules for "
	line = strings.TrimSpace(line)
	return len(line) > len(prefix) && strings.EqualFold(line[:len(prefix)], prefix) && line[len(prefix):] == user
}

func firstWord(line string) string {
	if f := strings.Fields(line); len(f) > 0 {
		return f[0]
	}
	return ""
}

// sudoersNames reports whether a sudoers line names user as a whole word
// ("packer", "%packer", "Defaults:packer", "bob, packer"; not "packer2",
// "packer-ci" or "xpacker"), or names uid as "#<uid>". Comment lines are
// ignored; "#<digits>" at the start of a line is a UID, not a comment.
func sudoersNames(line, user string, uid int) bool {
	t := strings.TrimLeft(line, " \t")
	if strings.HasPrefix(t, "#") && !(len(t) > 1 && t[1] >= '0' && t[1] <= '9') {
		return false
	}
	uidWord := ""
	if uid >= 0 {
		uidWord = strconv.Itoa(uid)
	}
	for i := 0; i < len(line); {
		if !isWordByte(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isWordByte(line[j]) {
			j++
		}
		w := line[i:j]
		if w == user || (w == uidWord && i > 0 && line[i-1] == '#') {
			return true
		}
		i = j
	}
	return false
}

// isWordByte reports bytes that can be part of a sudoers user name.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '$' || c >= 0x80
}
