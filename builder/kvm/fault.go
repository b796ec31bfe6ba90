package kvm

import (
	"encoding/json"
	"fmt"
)

// The fault classifier: what a QMP event, or the run state QEMU reports,
// says about the build, in the user's terms. Pure: the VM watcher
// (watcher.go) feeds it and acts on its verdicts; the tables in
// fault_test.go call it directly.

// vmFault is why a VM failed the build, in the user's terms.
type vmFault struct {
	What   string // what happened, e.g. "QEMU exited with signal 9 (killed)"
	Phase  string // the build phase it happened in, e.g. "provisioning"
	Serial string // the serial log's path when its tail helps
	Tail   string // the serial log's last lines, read when the fault happened
}

func (f *vmFault) Error() string {
	s := f.What
	if f.Phase != "" {
		s += " during " + f.Phase
	}
	if f.Tail != "" {
		s += fmt.Sprintf("\nLast lines of the serial console (%s):\n%s", f.Serial, f.Tail)
	}
	return s
}

// verdict is what one QMP event or run state says about the build. The
// zero value: nothing (the event is ignored).
type verdict struct {
	// fault is the fault in the user's terms; "" when there is none.
	fault string
	// serial: the serial console's tail explains the fault (the guest
	// said why); not for faults the host caused.
	serial bool
	// diskFull is non-empty when a write failed for lack of space: the
	// action QEMU took ("stop", "report"). The watcher names the
	// filesystem and its free space (diskFull).
	diskFull string
	// queryStatus: the guest stopped; why is in its run state, to be asked
	// with query-status and judged by classifyStatus.
	queryStatus bool
	// shutdown is set by a SHUTDOWN event, "a shutdown (<reason>)", to be
	// said with QEMU's exit if QEMU exits next.
	shutdown string
}

// classifyEvent judges one QMP event (name and data as QEMU sends them):
// BLOCK_IO_ERROR (a full disk, or another I/O error unless QEMU ignores
// it), STOP (see queryStatus), GUEST_PANICKED and SHUTDOWN (every reason
// but a host signal, whose exit says more). Other events give the zero
// verdict.
func classifyEvent(event string, data json.RawMessage) verdict {
	switch event {
	case "BLOCK_IO_ERROR":
		var d struct {
			Device    string `json:"device"`
			Node      string `json:"node-name"`
			Operation string `json:"operation"`
			Action    string `json:"action"`
			NoSpace   bool   `json:"nospace"`
			Reason    string `json:"reason"`
		}
		_ = json.Unmarshal(data, &d)
		if d.Action == "ignore" {
			return verdict{}
		}
		if d.NoSpace {
			return verdict{diskFull: firstOf(d.Action, "stop")}
		}
		did := "QEMU paused the guest"
		if d.Action == "report" {
			did = "the guest got an I/O error"
		}
		return verdict{fault: fmt.Sprintf("QEMU could not %s the disk %s (%s): %s", d.Operation, firstOf(d.Device, d.Node), d.Reason, did)}
	case "STOP":
		return verdict{queryStatus: true}
	case "GUEST_PANICKED":
		return verdict{fault: "the guest kernel panicked", serial: true}
	case "SHUTDOWN":
		var d struct {
			Guest  bool   `json:"guest"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(data, &d)
		v := verdict{shutdown: "a shutdown (" + d.Reason + ")", serial: true}
		switch d.Reason {
		case "guest-panic":
			v.fault = "the guest kernel panicked"
		case "guest-shutdown":
			v.fault = "the guest powered itself off (nobody asked it to)"
		case "guest-reset":
			v.fault = "the guest rebooted and QEMU stopped (-no-reboot)"
		case "host-signal":
			// QEMU exits next; its stderr names the signal and the sender.
			v.serial = false
		default:
			v.fault = "QEMU shut the guest down (" + d.Reason + ")"
		}
		return v
	}
	return verdict{}
}

// classifyStatus judges the run state (query-status's "status") of a
// stopped guest: io-error (a full disk), guest-panicked, internal-error. A
// pause anyone asked for ("paused", …) is not a fault.
func classifyStatus(status string) verdict {
	switch status {
	case "io-error":
		return verdict{diskFull: "stop"}
	case "guest-panicked":
		return verdict{fault: "the guest kernel panicked", serial: true}
	case "internal-error":
		return verdict{fault: "QEMU stopped the guest on an internal error (the emulation failed)", serial: true}
	}
	return verdict{}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// humanBytes is n in KiB, MiB or GiB.
func humanBytes(n uint64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
