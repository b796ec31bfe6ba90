package artifactstate

import (
	"strings"
	"testing"
	"time"
)

type state map[string]interface{}

func (s state) State(k string) interface{} { return s[k] }

func TestString(t *testing.T) {
	s := state{SourceImageURL: "https://example.org/a.qcow2", Firmware: 42}
	if got := String(s, SourceImageURL); got != "https://example.org/a.qcow2" {
		t.Errorf("got %q", got)
	}
	if got := String(s, Firmware); got != "" {
		t.Errorf("a non-string value: %q, want empty", got)
	}
	if got := String(s, GuestFacts); got != "" {
		t.Errorf("an absent key: %q, want empty", got)
	}
}

func TestTime(t *testing.T) {
	s := state{StartedAt: "2026-11-26T10:00:00Z", Format: "yesterday"}
	if got := Time(s, StartedAt); !got.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("got %v", got)
	}
	if got := Time(s, Format); !got.IsZero() {
		t.Errorf("malformed: %v, want zero", got)
	}
}

// The facts file of the reset provisioner, with its extra "reset" key.
func TestParseFacts(t *testing.T) {
	f, err := ParseFacts(`{"os_release":{"ID":"debian","VERSION_ID":"12"},"kernel":"6.1.0-28-cloud-amd64","package_manager":"dpkg",
		"packages":[{"name":"libssl3","version":"3.0.15-1~deb12u1","architecture":"amd64","source":"openssl","source_version":"3.0.15-1~deb12u1"}],
		"reset":{"user":"packer"}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := Package{Name: "libssl3", Version: "3.0.15-1~deb12u1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.15-1~deb12u1"}
	if f.OSRelease["VERSION_ID"] != "12" || f.PackageManager != PackageManagerDpkg || len(f.Packages) != 1 || f.Packages[0] != want {
		t.Errorf("got %+v", f)
	}
	if _, err := ParseFacts("{"); err == nil || !strings.Contains(err.Error(), "guest facts") {
		t.Errorf("err = %v", err)
	}
}
