package metadata

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/builder/kvm"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

type fakeArtifact struct {
	id      string
	builder string
	files   []string
	state   map[string]interface{}
}

func (a *fakeArtifact) BuilderId() string          { return a.builder }
func (a *fakeArtifact) Files() []string            { return a.files }
func (a *fakeArtifact) Id() string                 { return a.id }
func (a *fakeArtifact) String() string             { return a.id }
func (a *fakeArtifact) State(k string) interface{} { return a.state[k] }
func (a *fakeArtifact) Destroy() error             { return nil }

func qcow2(t *testing.T, path, size string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, size).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create (install qemu-utils): %v %s", err, out)
	}
}

func TestPostProcessCloudimgArtifact(t *testing.T) {
	repo := t.TempDir()
	image := filepath.Join(repo, "20261126", "node.qcow2")
	qcow2(t, image, "3G")
	facts := `{"kernel":"6.1.0-28-cloud-amd64","reset":{"user":"packer"}}`
	a := &fakeArtifact{id: image, builder: kvm.BuilderID, files: []string{image}, state: map[string]interface{}{
		kvm.StateSourceImageURL:      "https://user:secret@example.org/debian-12-genericcloud-amd64-20261101.qcow2",
		kvm.StateSourceImageChecksum: "sha256:abcd",
		kvm.StateGuestFacts:          facts,
		kvm.StateStartedAt:           "2026-11-26T10:00:00Z",
		kvm.StateFirmware:            "uefi",
		kvm.StateArch:                "arm64",
	}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{
		"repository": repo, "labels": map[string]string{"stage": "production"},
		"packer_build_name": "production", "packer_builder_type": "cloudimg-kvm",
	}); err != nil {
		t.Fatal(err)
	}
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || !force {
		t.Error("the image must be kept")
	}
	if got := out.Files(); len(got) != 2 || got[1] != image+".metadata.json" {
		t.Fatalf("files = %v", got)
	}
	m, err := imagemeta.ReadMetadata(image + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.Image.VirtualSizeBytes != 3<<30 || m.Image.Format != "qcow2" || m.Image.Path != "node.qcow2" || m.Image.Firmware != "uefi" || m.Image.Arch != "arm64" {
		t.Errorf("image = %+v", m.Image)
	}
	if len(m.Image.Checksums["sha256"]) != 64 || len(m.Image.Checksums["sha512"]) != 128 {
		t.Errorf("checksums = %v", m.Image.Checksums)
	}
	if m.Source == nil || strings.Contains(m.Source.URL, "secret") || m.Source.Checksum != "sha256:abcd" {
		t.Errorf("source = %+v", m.Source)
	}
	if m.Build.SourceName != "production" || m.Build.StartedAt.IsZero() || m.Labels["stage"] != "production" || m.Image.Name != "production" {
		t.Errorf("build = %+v labels = %v name = %q", m.Build, m.Labels, m.Image.Name)
	}
	var g map[string]interface{}
	if err := json.Unmarshal(m.Guest, &g); err != nil || g["kernel"] != "6.1.0-28-cloud-amd64" {
		t.Errorf("guest = %s (%v)", m.Guest, err)
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil || len(idx.Images) != 1 || idx.Latest["production"] != "20261126/node.qcow2" || idx.Images[0].Firmware != "uefi" {
		t.Errorf("index = %+v, %v", idx, err)
	}
}

// Packer runs in the template's directory and artifacts name their files
// relative to it, like output_directory = "repo/<id>" with repository = "repo".
func TestPostProcessRelativePaths(t *testing.T) {
	t.Chdir(t.TempDir())
	image := filepath.Join("repo", "20261126", "node.qcow2")
	qcow2(t, image, "1G")
	a := &fakeArtifact{id: image, builder: kvm.BuilderID, files: []string{image}, state: map[string]interface{}{}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"repository": "repo", "packer_build_name": "node"}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a); err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join("repo", "SHA256SUMS"))
	if err != nil || !strings.HasSuffix(string(sums), "  20261126/node.qcow2\n") {
		t.Fatalf("SHA256SUMS = %q, %v", sums, err)
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = "repo"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}
	m, err := imagemeta.ReadMetadata(image + ".metadata.json")
	if err != nil || m.Image.Path != "node.qcow2" {
		t.Errorf("metadata path: %+v %v", m, err)
	}
}

func TestPostProcessForeignArtifact(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, []byte("not much of a disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &fakeArtifact{id: "x", builder: "transcend.qemu", files: []string{raw}, state: map[string]interface{}{}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"packer_build_name": "b"}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a); err != nil {
		t.Fatal(err)
	}
	m, err := imagemeta.ReadMetadata(raw + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != nil || m.Guest != nil || m.Image.Format != "raw" || m.Image.VirtualSizeBytes != 18 {
		t.Errorf("metadata = %+v", m)
	}
}

func TestPostProcessMissingFile(t *testing.T) {
	a := &fakeArtifact{id: "/nonexistent/img.qcow2", builder: kvm.BuilderID, files: []string{"/nonexistent/img.qcow2"}, state: map[string]interface{}{}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{}); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/img.qcow2") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigureErrors(t *testing.T) {
	cases := []struct {
		raw   map[string]interface{}
		field string
	}{
		{map[string]interface{}{"checksum_types": []string{"crc32"}}, "checksum_types[0]"},
		{map[string]interface{}{"repository": "r", "checksum_types": []string{"sha512"}}, "checksum_types"},
		{map[string]interface{}{"output": "{{ .Nope"}, "output"},
		{map[string]interface{}{"bogus_option": true}, "bogus_option"},
	}
	for _, tc := range cases {
		var p PostProcessor
		err := p.Configure(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: err = %v, want it to name %s", tc.raw, err, tc.field)
		}
	}
}
