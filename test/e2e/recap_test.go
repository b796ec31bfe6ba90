//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The failure recap. A scenario's log is long and interleaved (parallel
// boots, cleanups that dump serial consoles), and a CI report that shows
// only the lines around "--- FAIL" and the end of the run misses the
// message that says what failed. TestMain therefore tees the test binary's
// standard output (where testing's -v stream goes) and, when the run
// failed, ends it with the last messages of each failed leaf test: its
// failure is one of them (what a test logs after failing is its cleanups'
// diagnostics, a few messages).

// outputTee copies os.Stdout to the real standard output and to a buffer.
type outputTee struct {
	real *os.File
	w    *os.File
	buf  bytes.Buffer
	done chan struct{}
}

// teeStdout starts the tee; testing's -v printer takes os.Stdout when
// m.Run starts, so it must run before that.
func teeStdout() (*outputTee, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o := &outputTee{real: os.Stdout, w: w, done: make(chan struct{})}
	os.Stdout = w
	go func() {
		defer close(o.done)
		_, _ = io.Copy(io.MultiWriter(o.real, &o.buf), r)
		r.Close()
	}()
	return o, nil
}

// stop restores os.Stdout and returns everything that went through.
func (o *outputTee) stop() []byte {
	os.Stdout = o.real
	o.w.Close()
	<-o.done
	return o.buf.Bytes()
}

var (
	recapHeader  = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	recapResult  = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	recapMessage = regexp.MustCompile(`^ {4}\S+\.go:\d+: `)
	recapNotable = regexp.MustCompile(`(?i)error|fail|refused|denied|timed? ?out|no space|killed|panic|not found|missing`)
)

// Recap limits: messages per failed test, notable continuation lines per
// message, characters per line.
const (
	recapMessages     = 6
	recapContinuation = 4
	recapLineChars    = 300
)

// failureRecap reads a go test -v stream (Go 1.20+: each test's lines
// follow an "=== RUN/CONT/NAME <test>" header) and returns, for each
// failed test none of whose subtests failed, the first line of its last
// recapMessages messages, each with up to recapContinuation of its
// continuation lines that name an error. It returns "" when no test failed.
func failureRecap(stream []byte) string {
	type message struct {
		head string
		more []string
	}
	msgs := map[string][]*message{}
	var failed []string
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if m := recapHeader.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := recapResult.FindStringSubmatch(line); m != nil {
			if m[1] == "FAIL" && !slices.Contains(failed, m[2]) {
				failed = append(failed, m[2])
			}
			cur = ""
			continue
		}
		if cur == "" {
			continue
		}
		if recapMessage.MatchString(line) {
			msgs[cur] = append(msgs[cur], &message{head: strings.TrimSpace(line)})
			continue
		}
		if l := msgs[cur]; len(l) > 0 && strings.HasPrefix(line, "        ") {
			if m := l[len(l)-1]; len(m.more) < recapContinuation && recapNotable.MatchString(line) {
				m.more = append(m.more, strings.TrimSpace(line))
			}
		}
	}
	clip := func(s string) string {
		if len(s) > recapLineChars {
			return s[:recapLineChars] + " …"
		}
		return s
	}
	var b strings.Builder
	for _, name := range failed {
		leaf := true
		for _, other := range failed {
			if strings.HasPrefix(other, name+"/") {
				leaf = false
			}
		}
		if !leaf {
			continue
		}
		l := msgs[name]
		fmt.Fprintf(&b, "%s failed; its last %d of %d messages:\n", name, min(len(l), recapMessages), len(l))
		for _, m := range l[max(0, len(l)-recapMessages):] {
			fmt.Fprintf(&b, "    %s\n", clip(m.head))
			for _, c := range m.more {
				fmt.Fprintf(&b, "        %s\n", clip(c))
			}
		}
	}
	return b.String()
}

// TestFailureRecap checks the recap on a stream as go test -v prints it.
func TestFailureRecap(t *testing.T) {
	stream := `=== RUN   TestA
=== RUN   TestA/sub
=== PAUSE TestA/sub
=== RUN   TestA/ok
    a_test.go:10: fine
=== CONT  TestA/sub
    a_test.go:20: booting
=== NAME  TestA/ok
    a_test.go:11: still fine
=== NAME  TestA/sub
    a_test.go:30: tofu apply: exit status 1
        Planning...
        Error: creating volume: storage volume exists
    a_test.go:40: test failed; serial:
        [  1.0] kernel line
=== NAME  TestA
    a_test.go:12: TIMING
--- FAIL: TestA (1.00s)
    --- FAIL: TestA/sub (0.50s)
    --- PASS: TestA/ok (0.50s)
=== RUN   TestB
--- PASS: TestB (0.00s)
`
	got := failureRecap([]byte(stream))
	want := `TestA/sub failed; its last 3 of 3 messages:
    a_test.go:20: booting
    a_test.go:30: tofu apply: exit status 1
        Error: creating volume: storage volume exists
    a_test.go:40: test failed; serial:
`
	if got != want {
		t.Errorf("recap:\n%s\nwant:\n%s", got, want)
	}
	if got := failureRecap([]byte("=== RUN   TestB\n--- PASS: TestB (0.00s)\n")); got != "" {
		t.Errorf("recap of a passing run: %q, want empty", got)
	}
}
