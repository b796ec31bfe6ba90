package accounts

import "strings"

// splitLines splits b into lines without their "\n" terminators and
// reports whether the last line was terminated. Empty input has no lines.
func splitLines(b []byte) (lines []string, finalNewline bool) {
	s := string(b)
	if s == "" {
		return nil, false
	}
	finalNewline = strings.HasSuffix(s, "\n")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n"), finalNewline
}

// editLines calls edit for every line of b (0-based index, text without
// "\n"). edit returns the replacement line and whether to keep it. The
// result keeps the input's final newline, or its absence. When nothing
// changes, b itself is returned (so nil stays nil).
func editLines(b []byte, edit func(i int, line string) (string, bool)) []byte {
	lines, finalNewline := splitLines(b)
	out := make([]string, 0, len(lines))
	changed := false
	for i, line := range lines {
		repl, keep := edit(i, line)
		if !keep || repl != line {
			changed = true
		}
		if keep {
			out = append(out, repl)
		}
	}
	if !changed {
		return b
	}
	s := strings.Join(out, "\n")
	if finalNewline && len(out) > 0 {
		s += "\n"
	}
	return []byte(s)
}

// firstField returns the text before the first ':' (the whole line if
// there is none): the key of passwd, shadow, group, gshadow, subuid and
// subgid lines.
func firstField(line string) string {
	name, _, _ := strings.Cut(line, ":")
	return name
}

// isSpecial reports lines that are never edited as records: comments and
// NIS compat lines ("+name", "-name", "+@netgroup", "+").
func isSpecial(line string) bool {
	return strings.HasPrefix(line, "#") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-")
}

// removeMember removes every entry equal to user (ignoring surrounding
// blanks) from a comma-separated list. All other entries, separators
// included, are kept byte for byte. It reports whether user was present.
func removeMember(list, user string) (string, bool) {
	if !strings.Contains(list, user) {
		return list, false
	}
	items := strings.Split(list, ",")
	kept := items[:0:0]
	for _, it := range items {
		if strings.TrimSpace(it) != user {
			kept = append(kept, it)
		}
	}
	if len(kept) == len(items) {
		return list, false
	}
	return strings.Join(kept, ","), true
}

// otherMembers lists the non-empty entries of a comma-separated list other
// than user.
func otherMembers(list, user string) []string {
	var out []string
	for _, it := range strings.Split(list, ",") {
		if it = strings.TrimSpace(it); it != "" && it != user {
			out = append(out, it)
		}
	}
	return out
}

// namesUser reports whether user appears as a whole ':'- or ','-separated
// token of line (after trimming blanks).
func namesUser(line, user string) bool {
	if !strings.Contains(line, user) {
		return false
	}
	for _, f := range strings.Split(line, ":") {
		for _, it := range strings.Split(f, ",") {
			if strings.TrimSpace(it) == user {
				return true
			}
		}
	}
	return false
}
