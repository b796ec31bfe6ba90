package cloudinitreset

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

// TestIdentity: the identity names the run (PACKER_RUN_UUID), the source
// and builder, the source image the builder published, the labels.
func TestIdentity(t *testing.T) {
	t.Setenv("PACKER_RUN_UUID", "0b5f6a1e-4f0e-4a53-9d7b-1c2d3e4f5a6b")
	cfg := &Config{PackerConfig: common.PackerConfig{PackerBuildName: "basic", PackerBuilderType: "cloudimg-kvm"}, Labels: map[string]string{"role": "web"}}
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	r := &run{cfg: cfg, ui: newTestUI(), data: map[string]interface{}{
		"SourceImageURL": "https://example.com/debian-12.qcow2", "SourceImageChecksum": "sha256:00ff",
	}}
	b, err := r.identity(at)
	if err != nil {
		t.Fatal(err)
	}
	var id imagemeta.Identity
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	want := imagemeta.Identity{
		SchemaVersion: 1, BuildID: "0b5f6a1e-4f0e-4a53-9d7b-1c2d3e4f5a6b", SourceName: "basic", BuilderType: "cloudimg-kvm",
		SourceImage: &imagemeta.IdentitySource{URL: "https://example.com/debian-12.qcow2", Checksum: "sha256:00ff"},
		ResetAt:     at, PluginVersion: version.PluginVersion.FormattedVersion(), Labels: map[string]string{"role": "web"},
	}
	if g, w := mustJSON(t, id), mustJSON(t, want); g != w {
		t.Errorf("identity:\n%s\nwant:\n%s", g, w)
	}

	// A builder that publishes no source image: Packer's ERR_ placeholders.
	r.data = map[string]interface{}{"SourceImageURL": "ERR_SourceImageURL_NOT_FOUND"}
	if b, err = r.identity(at); err != nil || strings.Contains(string(b), "source_image") {
		t.Errorf("without a source image: %v\n%s", err, b)
	}

	// Not run by Packer: no build name, no file.
	r.cfg = &Config{}
	if b, err = r.identity(at); err != nil || b != nil {
		t.Errorf("without a build name: %v, %q; want no identity", err, b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigLabels(t *testing.T) {
	var p Provisioner
	err := p.Prepare(map[string]interface{}{"labels": map[string]string{" ": "x"}})
	if err == nil || !strings.Contains(err.Error(), "labels: empty label name") {
		t.Errorf("Prepare with an empty label name: %v", err)
	}
}
