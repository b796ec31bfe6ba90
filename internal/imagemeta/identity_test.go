package imagemeta

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMarshalIdentity(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 1, 2, 345, time.FixedZone("x", 3600))
	b, err := MarshalIdentity(&Identity{
		BuildID: "7f0c", SourceName: "basic", BuilderType: "cloudimg-kvm",
		SourceImage: &IdentitySource{URL: "https://u:secret@example.com/a.qcow2", Checksum: "sha256:ab"},
		ResetAt:     at, PluginVersion: "1.2.3", Labels: map[string]string{"role": "web", "env": "prod"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "schema_version": 1,
  "build_id": "7f0c",
  "source_name": "basic",
  "builder_type": "cloudimg-kvm",
  "source_image": {
    "url": "https://example.com/a.qcow2",
    "checksum": "sha256:ab"
  },
  "reset_at": "2026-12-06T19:01:02Z",
  "plugin_version": "1.2.3",
  "labels": {
    "env": "prod",
    "role": "web"
  }
}
`
	if string(b) != want {
		t.Errorf("got:\n%s\nwant:\n%s", b, want)
	}
	var back Identity
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Matches(IndexEntry{BuildID: "7f0c", SourceName: "basic"}) {
		t.Error("the identity does not match the entry of its build")
	}
	for _, e := range []IndexEntry{{BuildID: "7f0c", SourceName: "other"}, {BuildID: "other", SourceName: "basic"}, {}} {
		if back.Matches(e) {
			t.Errorf("the identity matches %+v", e)
		}
	}
	if (&Identity{SourceName: "basic"}).Matches(IndexEntry{SourceName: "basic"}) {
		t.Error("an identity without a build id matches an entry without one")
	}
}

func TestMarshalIdentityRefuses(t *testing.T) {
	now := time.Now()
	for name, id := range map[string]*Identity{
		"nil":            nil,
		"no source name": {ResetAt: now},
		"no time":        {SourceName: "basic"},
		"other schema":   {SourceName: "basic", ResetAt: now, SchemaVersion: 2},
	} {
		if _, err := MarshalIdentity(id); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "imagemeta: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
