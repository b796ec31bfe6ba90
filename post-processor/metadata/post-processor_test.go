package metadata

import (
	"context"
	"encoding/json"
	"fmt"
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
	if m.Image.VirtualSizeBytes != 3<<30 || m.Image.Format != "qcow2" || m.Image.Path != "node.qcow2" || m.Image.Firmware != "uefi" {
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
		{map[string]interface{}{"repository": "r", "keep_last": -1}, "keep_last: must be 0"},
		{map[string]interface{}{"keep_last": 2}, "keep_last: only used with repository"},
	}
	for _, tc := range cases {
		var p PostProcessor
		err := p.Configure(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: err = %v, want it to name %s", tc.raw, err, tc.field)
		}
	}
}

// A chained build: the variant's source is an image of a repository, so its
// metadata names the base (from the base's own metadata); keep_last then
// keeps the newest variant only and leaves the base alone.
func TestPostProcessChainedKeepLast(t *testing.T) {
	repo := t.TempDir()
	run := func(image, name, srcURL, srcSum, runID string) string {
		t.Helper()
		t.Setenv("PACKER_RUN_UUID", runID)
		qcow2(t, image, "1G")
		state := map[string]interface{}{}
		if srcURL != "" {
			state[kvm.StateSourceImageURL] = srcURL
			state[kvm.StateSourceImageChecksum] = srcSum
		}
		a := &fakeArtifact{id: image, builder: kvm.BuilderID, files: []string{image}, state: state}
		var p PostProcessor
		if err := p.Configure(map[string]interface{}{
			"repository": repo, "image_name": name, "keep_last": 1,
			"labels": map[string]string{"stage": "dev"}, "packer_build_name": name,
		}); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		ui := &packersdk.BasicUi{Writer: &out, ErrorWriter: &out}
		if _, _, _, err := p.PostProcess(context.Background(), ui, a); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	base := filepath.Join(repo, "b1", "base.qcow2")
	run(base, "base", "", "", "run-base")
	bm, err := imagemeta.ReadMetadata(base + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	baseSum := bm.Image.Checksums["sha256"]

	v1 := filepath.Join(repo, "v1", "node.qcow2")
	run(v1, "node", base, "sha256:"+baseSum, "run-v1")
	m, err := imagemeta.ReadMetadata(v1 + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	want := imagemeta.Source{URL: base, Checksum: "sha256:" + baseSum, ImageName: "base", SHA256: baseSum,
		BuildID: "run-base", Labels: map[string]string{"stage": "dev"}, Metadata: base + ".metadata.json"}
	if m.Source == nil || fmt.Sprint(*m.Source) != fmt.Sprint(want) {
		t.Errorf("variant source = %+v\nwant %+v", m.Source, want)
	}

	out := run(filepath.Join(repo, "v2", "node.qcow2"), "node", base, "sha256:"+baseSum, "run-v2")
	if !strings.Contains(out, `keep_last = 1: removed the older image v1/node.qcow2 of "node" {stage=dev} from the repository (deleted v1/node.qcow2, v1/node.qcow2.metadata.json, v1)`) {
		t.Errorf("output does not report the removal:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(repo, "v1")); !os.IsNotExist(err) {
		t.Errorf("v1/ is still there: %v", err)
	}
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil || len(idx.Images) != 2 || idx.Latest["node"] != "v2/node.qcow2" || idx.Latest["base"] != "b1/base.qcow2" {
		t.Errorf("index = %+v, %v", idx, err)
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}

	// A checksum that is not the base's: the base is not named.
	out = run(filepath.Join(repo, "v3", "node.qcow2"), "node", base, "sha256:"+strings.Repeat("0", 64), "run-v3")
	if !strings.Contains(out, "Warning: the source image's metadata "+base+".metadata.json not linked") {
		t.Errorf("no warning about the mismatching base:\n%s", out)
	}
	m, _ = imagemeta.ReadMetadata(filepath.Join(repo, "v3", "node.qcow2.metadata.json"))
	if m == nil || m.Source == nil || m.Source.URL != base || m.Source.BuildID != "" {
		t.Errorf("v3 source = %+v", m)
	}
}

// An artifact of two images (another builder's) is one build: keep_last = 1
// keeps both of the newest build's images and removes the older build's.
func TestPostProcessKeepLastSeveralImages(t *testing.T) {
	repo := t.TempDir()
	build := func(id string) []string {
		var files []string
		for _, n := range []string{"a.raw", "b.raw"} {
			f := filepath.Join(repo, id, n)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte(id+n), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		a := &fakeArtifact{id: id, builder: "transcend.qemu", files: files, state: map[string]interface{}{}}
		var p PostProcessor
		if err := p.Configure(map[string]interface{}{"repository": repo, "keep_last": 1, "packer_build_name": "disks"}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a); err != nil {
			t.Fatal(err)
		}
		return files
	}
	// Both builds likely finish in the same second: the greater path is
	// then the newer, as for any tie.
	build("b1")
	build("b2")
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range idx.Images {
		paths = append(paths, e.Path)
	}
	if fmt.Sprint(paths) != "[b2/a.raw b2/b.raw]" {
		t.Errorf("images left %v, want b2/a.raw b2/b.raw", paths)
	}
	if _, err := os.Stat(filepath.Join(repo, "b1")); !os.IsNotExist(err) {
		t.Errorf("b1/ is still there: %v", err)
	}
}
