package kvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepWaitCloudInit waits for cloud-init to finish on the guest with
// `cloud-init status --wait`. cloud-init may restart sshd while we wait,
// which cuts the session: the command is then run again on a new one. So
// does an exit status above 128: the waiting command was killed by a
// signal (the shell's 128+N), which is no verdict of cloud-init's (its
// status exits 0, 1 or 2).
//
// Uses: config, ui, communicator (the SDK's StepConnect).
// Produces: nothing.
type stepWaitCloudInit struct {
	retryInterval time.Duration
}

// Exit codes of `cloud-init status`: 0 done, 1 error, 2 degraded (23.4+).
const (
	cloudInitDone     = 0
	cloudInitDegraded = 2
)

func (s *stepWaitCloudInit) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	if cfg.CloudInitWait.False() {
		return multistep.ActionContinue
	}
	ui := state.Get("ui").(packersdk.Ui)
	comm := state.Get("communicator").(packersdk.Communicator)
	retry := s.retryInterval
	if retry == 0 {
		retry = time.Second
	}

	ui.Say("Waiting for cloud-init to finish...")
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.CloudInitTimeout)
	defer cancel()
	for {
		code, out, err := runRemote(ctx, comm, "cloud-init status --wait")
		switch {
		case parent.Err() != nil:
			return halt(state, parent.Err())
		case ctx.Err() != nil:
			return halt(state, fmt.Errorf("cloud-init did not finish within %s (cloud_init_timeout)%s", cfg.CloudInitTimeout, diagnose(comm)))
		case err != nil || code == packersdk.CmdDisconnect || killedBySignal(code):
			// The session was cut (cloud-init restarting sshd), or the
			// waiting command killed with it: again.
			if err == nil && code != packersdk.CmdDisconnect {
				ui.Say(fmt.Sprintf("cloud-init status --wait ended with exit %d (killed by signal %d), not a status: asking again", code, code-128))
			}
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
			continue
		case code == cloudInitDone:
			ui.Say("cloud-init finished: " + lastLine(out))
			return multistep.ActionContinue
		case code == cloudInitDegraded:
			// The cause goes on the first line: it is the line Packer
			// prints after "Build '…' errored after …:".
			msg := "cloud-init finished degraded (recoverable errors)"
			if cause := statusCause(parent, comm); cause != "" {
				msg = "cloud-init finished degraded: " + cause
			}
			if cfg.CloudInitDegraded == "fail" {
				return halt(state, fmt.Errorf("%s\n(fatal: cloud_init_degraded = \"fail\")%s", msg, diagnose(comm)))
			}
			ui.Say("Warning: " + msg + "\n(continuing: cloud_init_degraded = \"warn\")" + diagnose(comm))
			return multistep.ActionContinue
		default:
			cause := statusCause(parent, comm)
			if cause == "" {
				cause = lastLine(out)
			}
			return halt(state, fmt.Errorf("cloud-init failed (exit %d): %s%s", code, cause, diagnose(comm)))
		}
	}
}

func (s *stepWaitCloudInit) Cleanup(multistep.StateBag) {}

// killedBySignal reports whether a remote exit status is a signal's death
// (128+N as a shell reports it, and as the SDK's SSH communicator turns an
// exit-signal message into; RFC 4254 section 6.10), with N at most 64, the
// highest Linux signal.
func killedBySignal(code int) bool { return code > 128 && code <= 128+64 }

// statusCause asks the guest's cloud-init why it did not finish cleanly
// (`cloud-init status --format json`, cloud-init 22.4+) and returns its
// answer on one line (see parseStatusCause), or "" when it has none.
func statusCause(ctx context.Context, comm packersdk.Communicator) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// stderr is dropped: it is not JSON (e.g. systemctl complaints). The
	// exit code is the status's (1 or 2 here), so it is not checked.
	_, out, err := runRemote(ctx, comm, "cloud-init status --format json 2>/dev/null")
	if err != nil {
		return ""
	}
	return parseStatusCause([]byte(out))
}

// Limits of the cause on the error's first line; the whole lists follow in
// the `cloud-init status --long` part of the diagnostics.
const (
	causeMaxMessages = 3
	causeMaxBytes    = 400 // per message
)

// parseStatusCause reads the JSON of `cloud-init status --format json` and
// returns cloud-init's own messages on one line: the hard "errors" first,
// then the "recoverable_errors" (cloud-init 23.4+: {LEVEL: [message…]}) as
// "LEVEL: message", the most severe level first, at most causeMaxMessages
// of them, separated by "; ", each once (cloud-init 25.1 lists a message
// once per stage that saw it). It returns "" for anything else (no JSON, an
// older cloud-init, a status without messages), so that the caller keeps
// its generic text.
func parseStatusCause(out []byte) string {
	// Only the JSON object: tolerate text around it.
	i, j := bytes.IndexByte(out, '{'), bytes.LastIndexByte(out, '}')
	if i < 0 || j < i {
		return ""
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(out[i:j+1], &top) != nil {
		return ""
	}
	var msgs []string
	var errs []any
	if json.Unmarshal(top["errors"], &errs) == nil {
		for _, e := range errs {
			if m := causeText(e); m != "" {
				msgs = append(msgs, m)
			}
		}
	}
	var rec map[string]json.RawMessage
	if json.Unmarshal(top["recoverable_errors"], &rec) == nil {
		levels := make([]string, 0, len(rec))
		for l := range rec {
			levels = append(levels, l)
		}
		sort.Slice(levels, func(a, b int) bool {
			ra, rb := logLevelRank(levels[a]), logLevelRank(levels[b])
			if ra != rb {
				return ra > rb
			}
			return levels[a] < levels[b]
		})
		for _, l := range levels {
			var list []any
			if json.Unmarshal(rec[l], &list) != nil {
				var one any // not a list: take the value itself
				if json.Unmarshal(rec[l], &one) != nil {
					continue
				}
				list = []any{one}
			}
			for _, e := range list {
				if m := causeText(e); m != "" {
					msgs = append(msgs, oneLine(l)+": "+m)
				}
			}
		}
	}
	msgs = dedupe(msgs)
	if len(msgs) == 0 {
		return ""
	}
	line := strings.Join(msgs[:min(len(msgs), causeMaxMessages)], "; ")
	if n := len(msgs) - causeMaxMessages; n > 0 {
		line += fmt.Sprintf("; and %d more", n)
	}
	return line
}

// dedupe drops the repeats of a message, keeping the first.
func dedupe(msgs []string) []string {
	seen := make(map[string]bool, len(msgs))
	out := msgs[:0]
	for _, m := range msgs {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// causeText is one of cloud-init's messages on one line (newlines become
// spaces, as in `cloud-init status --long`), cut at causeMaxBytes.
func causeText(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		s = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	s = oneLine(s)
	if len(s) > causeMaxBytes {
		cut := causeMaxBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// oneLine turns line breaks and tabs into spaces and trims s.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\t', '\v', '\f', '\u0085', '\u2028', '\u2029':
			return ' '
		}
		return r
	}, s))
}

// logLevelRank orders cloud-init's log level names by severity (Python's
// numbers; DEPRECATED is cloud-init's own 35); unknown names rank last.
func logLevelRank(level string) int {
	switch strings.ToUpper(level) {
	case "CRITICAL":
		return 50
	case "ERROR":
		return 40
	case "DEPRECATED":
		return 35
	case "WARNING", "WARNINGS":
		return 30
	}
	return 0
}

// diagnose collects cloud-init's own account of what went wrong.
func diagnose(comm packersdk.Communicator) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b strings.Builder
	if _, out, err := runRemote(ctx, comm, "cloud-init status --long"); err == nil {
		fmt.Fprintf(&b, "\n--- cloud-init status --long\n%s", strings.TrimRight(out, "\n"))
	}
	if _, out, err := runRemote(ctx, comm, "sudo -n tail -n 40 /var/log/cloud-init-output.log"); err == nil {
		fmt.Fprintf(&b, "\n--- tail of /var/log/cloud-init-output.log\n%s", strings.TrimRight(out, "\n"))
	}
	return b.String()
}

// runRemote runs a command through the communicator and returns its exit
// code and combined output. It stops waiting when ctx ends.
func runRemote(ctx context.Context, comm packersdk.Communicator, command string) (int, string, error) {
	var out safeBuffer
	cmd := &packersdk.RemoteCmd{Command: command, Stdout: &out, Stderr: &out}
	if err := comm.Start(ctx, cmd); err != nil {
		return 0, "", err
	}
	exited := make(chan int, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case code := <-exited:
		return code, out.String(), nil
	case <-ctx.Done():
		return 0, out.String(), ctx.Err()
	}
}

// safeBuffer is a bytes.Buffer that a command's output goroutines and the
// reader may use concurrently.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
