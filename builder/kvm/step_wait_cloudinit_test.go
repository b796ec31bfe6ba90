package kvm

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// scriptedComm answers `cloud-init status --wait` from a script of results
// and `cloud-init status --format json` with statusJSON.
type scriptedComm struct {
	packersdk.MockCommunicator
	mu         sync.Mutex
	results    []int  // exit codes; packersdk.CmdDisconnect for a cut session
	statusJSON string // "" answers like a command that does not know --format
	ran        []string
}

func (c *scriptedComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ran = append(c.ran, rc.Command)
	code := 0
	out := "output of " + rc.Command + "\n"
	switch {
	case strings.HasPrefix(rc.Command, "cloud-init status --wait") && len(c.results) > 0:
		code, c.results = c.results[0], c.results[1:]
	case strings.HasPrefix(rc.Command, "cloud-init status --format json"):
		out, code = c.statusJSON, 2
	}
	if rc.Stdout != nil {
		rc.Stdout.Write([]byte(out))
	}
	go rc.SetExited(code)
	return nil
}

func TestWaitCloudInit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		results    []int
		statusJSON string
		degraded   string
		ok         bool
		errHas     string // on the error's first line
		errBelow   string // further down
		said       string // in the UI's output
	}{
		{name: "done", results: []int{0}, degraded: "warn", ok: true},
		{name: "sshd restarted, then done", results: []int{packersdk.CmdDisconnect, packersdk.CmdDisconnect, 0}, degraded: "warn", ok: true},
		{name: "killed by SIGTERM, then done", results: []int{143, 0}, degraded: "warn", ok: true,
			said: "cloud-init status --wait ended with exit 143 (killed by signal 15), not a status: asking again\n"},
		{name: "command not found", results: []int{127}, degraded: "warn",
			errHas: "cloud-init failed (exit 127)"},
		{name: "degraded warns", results: []int{2}, statusJSON: status251Degraded, degraded: "warn", ok: true,
			said: "Warning: cloud-init finished degraded: DEPRECATED: Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead.\n"},
		{name: "degraded warns, no JSON", results: []int{2}, degraded: "warn", ok: true,
			said: "Warning: cloud-init finished degraded (recoverable errors)\n"},
		{name: "degraded fails", results: []int{2}, statusJSON: status251Degraded, degraded: "fail",
			errHas:   "cloud-init finished degraded: DEPRECATED: Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2",
			errBelow: "cloud_init_degraded = \"fail\""},
		{name: "degraded fails, garbage JSON", results: []int{2}, statusJSON: "Traceback (most recent call last):\n", degraded: "fail",
			errHas: "cloud-init finished degraded (recoverable errors)", errBelow: "cloud-init status --long"},
		{name: "error", results: []int{1}, degraded: "warn",
			errHas: "cloud-init failed (exit 1): output of cloud-init status --wait", errBelow: "cloud-init-output.log"},
		{name: "error with JSON", results: []int{1}, statusJSON: status224Error, degraded: "warn",
			errHas: "cloud-init failed (exit 1): ('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))", errBelow: "cloud-init-output.log"},
	} {
		cfg := &Config{CloudInitDegraded: tc.degraded, CloudInitTimeout: time.Minute}
		comm := &scriptedComm{results: tc.results, statusJSON: tc.statusJSON}
		var said strings.Builder
		state := stepState(t, cfg, nil)
		state.Put("ui", &packersdk.BasicUi{Writer: &said, ErrorWriter: &said})
		state.Put("communicator", comm)
		action := (&stepWaitCloudInit{retryInterval: time.Millisecond}).Run(context.Background(), state)
		ok := tc.errHas == ""
		if ok != (action == multistep.ActionContinue) {
			t.Errorf("%s: action %v, error %v", tc.name, action, state.Get("error"))
			continue
		}
		if !ok {
			msg := state.Get("error").(error).Error()
			first, rest, _ := strings.Cut(msg, "\n")
			if !strings.Contains(first, tc.errHas) {
				t.Errorf("%s: first line of the error lacks %q:\n%s", tc.name, tc.errHas, msg)
			}
			if !strings.Contains(rest, tc.errBelow) {
				t.Errorf("%s: error lacks %q below its first line:\n%s", tc.name, tc.errBelow, msg)
			}
		}
		if !strings.Contains(said.String(), tc.said) {
			t.Errorf("%s: UI output lacks %q:\n%s", tc.name, tc.said, said.String())
		}
		if strings.HasPrefix(tc.said, "Warning:") && !strings.Contains(said.String(), "cloud-init status --long") {
			t.Errorf("%s: the warning lost the diagnostics:\n%s", tc.name, said.String())
		}
	}

	cfg := &Config{CloudInitTimeout: time.Minute}
	cfg.CloudInitWait = 2 // config.TriFalse
	comm := &scriptedComm{}
	state := stepState(t, cfg, nil)
	state.Put("communicator", comm)
	if (&stepWaitCloudInit{}).Run(context.Background(), state) != multistep.ActionContinue || len(comm.ran) != 0 {
		t.Errorf("cloud_init_wait = false still ran %v", comm.ran)
	}
}

// Fixtures: `cloud-init status --format json` as each version prints it
// (pretty, sorted keys; the stages of status.json's v1 merged in), built
// from cloudinit/cmd/status.py and cmd/main.py of that version.

// 22.4 (Debian 12): no recoverable_errors; "schemas" repeats the dict.
const status224Error = `{
  "_schema_version": "1",
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]",
  "errors": [
    "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
  ],
  "last_update": "Thu, 01 Jan 1970 00:00:57 +0000",
  "schemas": {
    "1": {
      "boot_status_code": "enabled-by-generator",
      "datasource": "nocloud",
      "detail": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]",
      "errors": [
        "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
      ],
      "last_update": "Thu, 01 Jan 1970 00:00:57 +0000",
      "status": "error"
    }
  },
  "status": "error"
}`

// 23.4 (Ubuntu 24.04's first release): UXAppStatus "degraded done".
const status234Degraded = `{
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]",
  "errors": [],
  "extended_status": "degraded done",
  "init": {
    "errors": [],
    "finished": 1733000012.5,
    "recoverable_errors": {
      "WARNING": [
        "Failed to write boot finished file\nsecond line"
      ]
    },
    "start": 1733000010.1
  },
  "init-local": {
    "errors": [],
    "finished": 1733000009.9,
    "recoverable_errors": {},
    "start": 1733000009.0
  },
  "last_update": "Sat, 30 Nov 2024 20:00:20 +0000",
  "modules-config": {
    "errors": [],
    "finished": 1733000015.0,
    "recoverable_errors": {},
    "start": 1733000013.0
  },
  "modules-final": {
    "errors": [],
    "finished": 1733000020.0,
    "recoverable_errors": {
      "DEPRECATED": [
        "Config key 'lists' is deprecated in 22.3 and scheduled to be removed in 27.3. Use 'groups' instead."
      ]
    },
    "start": 1733000016.0
  },
  "recoverable_errors": {
    "DEPRECATED": [
      "Config key 'lists' is deprecated in 22.3 and scheduled to be removed in 27.3. Use 'groups' instead."
    ],
    "WARNING": [
      "Failed to write boot finished file\nsecond line"
    ]
  },
  "stage": null,
  "status": "done"
}`

// 24.4: running and condition status; uptimes instead of epoch times.
const status244Degraded = `{
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]",
  "errors": [],
  "extended_status": "degraded done",
  "init": {
    "errors": [],
    "finished": 31.2,
    "recoverable_errors": {
      "ERROR": [
        "Failed to install packages: ['nonexistent']"
      ],
      "WARNING": [
        "Running module package_update_upgrade_install failed"
      ]
    },
    "start": 20.4
  },
  "last_update": "Thu, 01 Jan 1970 00:00:40 +0000",
  "recoverable_errors": {
    "ERROR": [
      "Failed to install packages: ['nonexistent']"
    ],
    "WARNING": [
      "Running module package_update_upgrade_install failed"
    ]
  },
  "stage": null,
  "status": "done"
}`

// 25.1 (Debian 13): a deprecated key in user-data. As the real guest
// showed, the message is listed twice (once per stage that exported it).
const status251Degraded = `{
  "boot_status_code": "enabled-by-generator",
  "datasource": "nocloud",
  "detail": "DataSourceNoCloud [seed=/dev/sr0]",
  "errors": [],
  "extended_status": "degraded done",
  "init": {
    "errors": [],
    "finished": 25.06,
    "recoverable_errors": {
      "DEPRECATED": [
        "Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead."
      ]
    },
    "start": 21.93
  },
  "init-local": {
    "errors": [],
    "finished": 12.4,
    "recoverable_errors": {},
    "start": 10.9
  },
  "last_update": "Thu, 01 Jan 1970 00:00:39 +0000",
  "modules-config": {
    "errors": [],
    "finished": 31.0,
    "recoverable_errors": {
      "DEPRECATED": [
        "Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead."
      ]
    },
    "start": 29.8
  },
  "modules-final": {
    "errors": [],
    "finished": 39.2,
    "recoverable_errors": {},
    "start": 33.1
  },
  "recoverable_errors": {
    "DEPRECATED": [
      "Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead.",
      "Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead."
    ]
  },
  "stage": null,
  "status": "done"
}`

func TestParseStatusCause(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"22.4 error", status224Error, "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"},
		{"23.4 degraded: most severe level first, newlines flattened", status234Degraded,
			"DEPRECATED: Config key 'lists' is deprecated in 22.3 and scheduled to be removed in 27.3. Use 'groups' instead.; " +
				"WARNING: Failed to write boot finished file second line"},
		{"24.4 degraded", status244Degraded,
			"ERROR: Failed to install packages: ['nonexistent']; WARNING: Running module package_update_upgrade_install failed"},
		{"25.1 degraded: a repeated message once", status251Degraded,
			"DEPRECATED: Deprecated cloud-config provided: apt_update:  Deprecated in version 22.2. Use **package_update** instead."},
		{"repeats do not count", `{"recoverable_errors": {"WARNING": ["1", "1", "2", "2", "3", "3"]}}`, "WARNING: 1; WARNING: 2; WARNING: 3"},
		{"errors before recoverable errors", `{"errors": ["boom"], "recoverable_errors": {"WARNING": ["w"]}}`, "boom; WARNING: w"},
		{"unknown levels last, by name", `{"recoverable_errors": {"ZZZ": ["z"], "AAA": ["a"], "CRITICAL": ["c"]}}`, "CRITICAL: c; AAA: a; ZZZ: z"},
		{"at most three messages", `{"recoverable_errors": {"WARNING": ["1", "2", "3", "4", "5"]}}`, "WARNING: 1; WARNING: 2; WARNING: 3; and 2 more"},
		{"long message cut on a rune", `{"errors": ["` + long + `"]}`, long[:causeMaxBytes] + "…"},
		{"text around the JSON", "ignored\n" + `{"errors": ["x"]}` + "\n", "x"},
		{"odd values kept, empty ones dropped", `{"errors": [null, "", 7], "recoverable_errors": {"WARNING": "one", "ERROR": [{"a": 1}]}}`,
			`7; ERROR: {"a":1}; WARNING: one`},
		{"healthy", `{"errors": [], "recoverable_errors": {}, "extended_status": "done"}`, ""},
		{"lists of the wrong type", `{"errors": "x", "recoverable_errors": ["y"]}`, ""},
		{"a level name on one line", `{"recoverable_errors": {"A\nB": ["x"]}}`, "A B: x"},
		{"no JSON", "usage: /usr/bin/cloud-init [-h]\ncloud-init: error: unrecognized arguments: --format\n", ""},
		{"truncated JSON", status251Degraded[:200], ""},
		{"empty", "", ""},
		{"an array", `["a"]`, ""},
	} {
		if got := parseStatusCause([]byte(tc.in)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func FuzzParseStatusCause(f *testing.F) {
	for _, s := range []string{status224Error, status234Degraded, status244Degraded, status251Degraded, "", "{", `{"errors":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := parseStatusCause(b)
		if strings.ContainsAny(got, "\n\r") {
			t.Errorf("the cause spans lines: %q", got)
		}
	})
}
