package accounts

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name, old, new, want string
		oldNil, newNil       bool
	}{
		{name: "equal", old: "a\nb\n", new: "a\nb\n", want: ""},
		{name: "change in the middle", old: "1\n2\n3\n4\n5\n6\n7\n8\n9\n", new: "1\n2\n3\n4\nfive\n6\n7\n8\n9\n", want: "" +
			"--- f\n+++ f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"},
		{name: "delete first line", old: "a\nb\n", new: "b\n", want: "--- f\n+++ f\n@@ -1,2 +1 @@\n-a\n b\n"},
		{name: "two hunks", old: "x\n1\n2\n3\n4\n5\n6\n7\ny\n", new: "1\n2\n3\n4\n5\n6\n7\n", want: "" +
			"--- f\n+++ f\n@@ -1,4 +1,3 @@\n-x\n 1\n 2\n 3\n@@ -6,4 +5,3 @@\n 5\n 6\n 7\n-y\n"},
		{name: "gap of six merges", old: "x\n1\n2\n3\n4\n5\n6\ny\n", new: "1\n2\n3\n4\n5\n6\n", want: "" +
			"--- f\n+++ f\n@@ -1,8 +1,6 @@\n-x\n 1\n 2\n 3\n 4\n 5\n 6\n-y\n"},
		{name: "no newline at end", old: "a\nb", new: "a\n", want: "" +
			"--- f\n+++ f\n@@ -1,2 +1 @@\n a\n-b\n\\ No newline at end of file\n"},
		{name: "newline added", old: "a", new: "a\n", want: "" +
			"--- f\n+++ f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n"},
		{name: "file deleted", old: "a\n", newNil: true, want: "--- f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"},
		{name: "file created", new: "a\n", oldNil: true, want: "--- /dev/null\n+++ f\n@@ -0,0 +1 @@\n+a\n"},
		{name: "insertion", old: "a\nc\n", new: "a\nb\nc\n", want: "--- f\n+++ f\n@@ -1,2 +1,3 @@\n a\n+b\n c\n"},
	}
	for _, tc := range tests {
		old, new := []byte(tc.old), []byte(tc.new)
		if tc.oldNil {
			old = nil
		}
		if tc.newNil {
			new = nil
		}
		if got := Diff("f", old, new); got != tc.want {
			t.Errorf("%s: Diff =\n%s\nwant\n%s", tc.name, got, tc.want)
		}
		checkPatch(t, old, new, Diff("f", old, new))
	}
}

func TestDiffLarge(t *testing.T) {
	var a, b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&a, "%d\n", i)
		if i%1000 != 7 {
			fmt.Fprintf(&b, "%d\n", i)
		}
	}
	b.WriteString("end\n")
	checkPatch(t, []byte(a.String()), []byte(b.String()), Diff("f", []byte(a.String()), []byte(b.String())))
}

// checkPatch applies a unified diff made by Diff to old and checks that it
// gives new.
func checkPatch(t testing.TB, old, new []byte, diff string) {
	t.Helper()
	if string(old) == string(new) {
		if diff != "" {
			t.Fatalf("diff of equal contents: %q", diff)
		}
		return
	}
	src := diffLines(old)
	dl := diffLines([]byte(diff))
	if len(dl) < 2 || !strings.HasPrefix(dl[0], "--- ") || !strings.HasPrefix(dl[1], "+++ ") {
		t.Fatalf("bad diff header: %q", diff)
	}
	var out []string
	pos := 0 // next line of src to copy
	var last *string
	for i := 2; i < len(dl); i++ {
		l := dl[i]
		switch {
		case strings.HasPrefix(l, "@@ -"):
			r := strings.Fields(l)[1][1:]
			startS, _, _ := strings.Cut(r, ",")
			start, err := strconv.Atoi(startS)
			if err != nil {
				t.Fatalf("bad hunk header %q", l)
			}
			if strings.Contains(r, ",0") {
				start++ // "-L,0" means after line L
			}
			if start-1 < pos {
				t.Fatalf("hunks overlap at %q", l)
			}
			out = append(out, src[pos:start-1]...)
			pos = start - 1
			last = nil
		case l == "\\ No newline at end of file\n":
			if last == nil || !strings.HasSuffix(*last, "\n") {
				t.Fatalf("misplaced no-newline marker in %q", diff)
			}
			*last = strings.TrimSuffix(*last, "\n")
		case l[0] == ' ' || l[0] == '-':
			if pos >= len(src) || strings.TrimSuffix(src[pos], "\n") != strings.TrimSuffix(l[1:], "\n") {
				t.Fatalf("context/removed line %q does not match old line %d", l, pos+1)
			}
			pos++
			if l[0] == ' ' {
				out = append(out, l[1:])
				last = &out[len(out)-1]
			} else {
				s := l[1:]
				last = &s
			}
		case l[0] == '+':
			out = append(out, l[1:])
			last = &out[len(out)-1]
		default:
			t.Fatalf("bad diff line %q", l)
		}
	}
	out = append(out, src[pos:]...)
	if got := strings.Join(out, ""); got != string(new) {
		t.Fatalf("patch gives %q, want %q\ndiff:\n%s", got, new, diff)
	}
}
