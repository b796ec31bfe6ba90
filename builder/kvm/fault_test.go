package kvm

import (
	"encoding/json"
	"testing"
)

func TestClassifyEvent(t *testing.T) {
	tests := []struct {
		name, event, data string
		want              verdict
	}{
		{"disk full, paused", "BLOCK_IO_ERROR", `{"device":"","node-name":"n0","operation":"write","action":"stop","nospace":true,"reason":"No space left on device"}`,
			verdict{diskFull: "stop"}},
		{"disk full, reported to the guest", "BLOCK_IO_ERROR", `{"operation":"write","action":"report","nospace":true}`,
			verdict{diskFull: "report"}},
		{"another I/O error, paused", "BLOCK_IO_ERROR", `{"device":"virtio0","operation":"read","action":"stop","reason":"Input/output error"}`,
			verdict{fault: "QEMU could not read the disk virtio0 (Input/output error): QEMU paused the guest"}},
		{"another I/O error, by node name, reported", "BLOCK_IO_ERROR", `{"node-name":"#block123","operation":"write","action":"report","reason":"EIO"}`,
			verdict{fault: "QEMU could not write the disk #block123 (EIO): the guest got an I/O error"}},
		{"ignored I/O error", "BLOCK_IO_ERROR", `{"operation":"write","action":"ignore","nospace":true}`, verdict{}},
		{"stop: ask the run state", "STOP", `{}`, verdict{queryStatus: true}},
		{"panic", "GUEST_PANICKED", `{"action":"pause"}`, verdict{fault: "the guest kernel panicked", serial: true}},
		{"shutdown on panic", "SHUTDOWN", `{"guest":true,"reason":"guest-panic"}`,
			verdict{fault: "the guest kernel panicked", serial: true, shutdown: "a shutdown (guest-panic)"}},
		{"unasked power-off", "SHUTDOWN", `{"guest":true,"reason":"guest-shutdown"}`,
			verdict{fault: "the guest powered itself off (nobody asked it to)", serial: true, shutdown: "a shutdown (guest-shutdown)"}},
		{"reboot", "SHUTDOWN", `{"guest":true,"reason":"guest-reset"}`,
			verdict{fault: "the guest rebooted and QEMU stopped (-no-reboot)", serial: true, shutdown: "a shutdown (guest-reset)"}},
		{"host signal: QEMU's exit says more", "SHUTDOWN", `{"guest":false,"reason":"host-signal"}`,
			verdict{shutdown: "a shutdown (host-signal)"}},
		{"other shutdown reason", "SHUTDOWN", `{"guest":false,"reason":"host-qmp-quit"}`,
			verdict{fault: "QEMU shut the guest down (host-qmp-quit)", serial: true, shutdown: "a shutdown (host-qmp-quit)"}},
		{"unrelated event", "RTC_CHANGE", `{"offset":1}`, verdict{}},
	}
	for _, tt := range tests {
		if got := classifyEvent(tt.event, json.RawMessage(tt.data)); got != tt.want {
			t.Errorf("%s: classifyEvent(%s, %s)\n got %+v\nwant %+v", tt.name, tt.event, tt.data, got, tt.want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	for status, want := range map[string]verdict{
		"io-error":       {diskFull: "stop"},
		"guest-panicked": {fault: "the guest kernel panicked", serial: true},
		"internal-error": {fault: "QEMU stopped the guest on an internal error (the emulation failed)", serial: true},
		"paused":         {},
		"running":        {},
		"":               {},
	} {
		if got := classifyStatus(status); got != want {
			t.Errorf("classifyStatus(%q) = %+v, want %+v", status, got, want)
		}
	}
}
