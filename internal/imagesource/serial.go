package imagesource

import (
	"sort"
	"strings"
)

// compareSerials orders serials by their numeric fields, left to right:
// 20241004 < 20241004.1 < 20241005 (ubuntu), 20241004-1893 < 20241004-1894 <
// 20241005-1 (debian). It returns -1, 0 or 1. Non-digit characters only
// separate fields.
func compareSerials(a, b string) int {
	fa, fb := numericFields(a), numericFields(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		if c := compareDigits(fa[i], fb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(fa) < len(fb):
		return -1
	case len(fa) > len(fb):
		return 1
	}
	return strings.Compare(a, b)
}

func numericFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// compareDigits compares two digit strings as numbers of any size.
func compareDigits(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// sortNewestFirst sorts serials, newest first.
func sortNewestFirst(serials []string) {
	sort.Slice(serials, func(i, j int) bool { return compareSerials(serials[i], serials[j]) > 0 })
}

// newestList is up to n serials, newest first, for error messages.
func newestList(serials []string, n int) string {
	s := append([]string(nil), serials...)
	sortNewestFirst(s)
	more := ""
	if len(s) > n {
		more = ", …"
		s = s[:n]
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ") + more
}
