package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/docschema"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/provenance"
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
	facts := `{"os_release":{"ID":"debian","VERSION_ID":"12"},"kernel":"6.1.0-28-cloud-amd64","package_manager":"dpkg",
		"packages":[{"name":"libssl3","version":"3.0.15-1~deb12u1","architecture":"amd64","source":"openssl","source_version":"3.0.15-1~deb12u1"}],
		"reset":{"user":"packer"}}`
	a := &fakeArtifact{id: image, builder: "example.any-builder", files: []string{image}, state: map[string]interface{}{
		artifactstate.SourceImageURL:      "https://user:secret@example.org/debian-12-genericcloud-amd64-20261101.qcow2",
		artifactstate.SourceImageChecksum: "sha256:abcd",
		artifactstate.GuestFacts:          facts,
		artifactstate.StartedAt:           "2026-11-26T10:00:00Z",
		artifactstate.Firmware:            "uefi",
		artifactstate.Arch:                "arm64",
	}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{
		"repository": repo, "labels": map[string]string{"stage": "production"},
		"provenance_parameters": map[string]string{"release": "bookworm"},
		"packer_build_name":     "production", "packer_builder_type": "cloudimg-kvm",
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
	if got := out.Files(); !slices.Equal(got, []string{image, image + ".metadata.json", image + ".cdx.json", image + ".intoto.json"}) {
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
		t.Fatalf("index = %+v, %v", idx, err)
	}

	// The SBOM and the provenance: valid, about this image, listed in the
	// metadata (relative to it) and in the index and SHA256SUMS (relative
	// to the repository).
	sha := m.Image.Checksums["sha256"]
	cdxDoc, err := os.ReadFile(image + ".cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.Validate(docschema.CycloneDX16, cdxDoc); err != nil {
		t.Error(err)
	}
	if !strings.Contains(string(cdxDoc), `"purl": "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64\u0026distro=debian-12\u0026upstream=openssl"`) &&
		!strings.Contains(string(cdxDoc), `"purl": "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl"`) {
		t.Errorf("no libssl3 purl in\n%s", cdxDoc)
	}
	if !strings.Contains(string(cdxDoc), sha) {
		t.Error("the SBOM does not name the image's sha256")
	}
	st, pred, err := provenance.Parse(mustRead(t, image+".intoto.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.GetSubject()[0].GetDigest()["sha256"] != sha || st.GetSubject()[0].GetName() != "node.qcow2" {
		t.Errorf("provenance subject %v", st.GetSubject())
	}
	if pred.GetRunDetails().GetBuilder().GetId() != provenance.BuilderIDPrefix+"example.any-builder" ||
		!pred.GetRunDetails().GetMetadata().GetStartedOn().AsTime().Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("run details %v", pred.GetRunDetails())
	}
	deps := pred.GetBuildDefinition().GetResolvedDependencies()
	if len(deps) == 0 || deps[0].GetName() != "source-image" || strings.Contains(deps[0].GetUri(), "secret") {
		t.Errorf("resolved dependencies %v", deps)
	}
	if got := pred.GetBuildDefinition().GetExternalParameters().AsMap()["labels"]; !reflect.DeepEqual(got, map[string]any{"stage": "production"}) {
		t.Errorf("external parameters: labels %v", got)
	}
	if got := pred.GetBuildDefinition().GetExternalParameters().AsMap()["parameters"]; !reflect.DeepEqual(got, map[string]any{"release": "bookworm"}) {
		t.Errorf("external parameters: parameters %v, want provenance_parameters", got)
	}
	wantSidecars := []imagemeta.Sidecar{
		{Kind: imagemeta.SidecarCycloneDX, Path: "node.qcow2.cdx.json", SHA256: sha256File(t, image+".cdx.json")},
		{Kind: imagemeta.SidecarProvenance, Path: "node.qcow2.intoto.json", SHA256: sha256File(t, image+".intoto.json")},
	}
	if !reflect.DeepEqual(m.Sidecars, wantSidecars) {
		t.Errorf("metadata sidecars %+v, want %+v", m.Sidecars, wantSidecars)
	}
	wantIndex := []imagemeta.Sidecar{
		{Kind: imagemeta.SidecarCycloneDX, Path: "20261126/node.qcow2.cdx.json", SHA256: wantSidecars[0].SHA256},
		{Kind: imagemeta.SidecarProvenance, Path: "20261126/node.qcow2.intoto.json", SHA256: wantSidecars[1].SHA256},
		{Kind: imagemeta.SidecarMetadata, Path: "20261126/node.qcow2.metadata.json", SHA256: sha256File(t, image+".metadata.json")},
	}
	if !reflect.DeepEqual(idx.Images[0].Sidecars, wantIndex) {
		t.Errorf("index sidecars %+v, want %+v", idx.Images[0].Sidecars, wantIndex)
	}
	sums := string(mustRead(t, filepath.Join(repo, "SHA256SUMS")))
	for _, sc := range wantIndex {
		if !strings.Contains(sums, sc.SHA256+"  "+sc.Path+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", sc.Path, sums)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	sum := sha256.Sum256(mustRead(t, p))
	return hex.EncodeToString(sum[:])
}

// sbom = "spdx" writes an SPDX document instead; sbom = "none" and
// provenance = false write neither.
func TestPostProcessDocumentOptions(t *testing.T) {
	facts := `{"os_release":{"ID":"ubuntu","VERSION_ID":"24.04"},"package_manager":"dpkg","packages":[{"name":"sudo","version":"1.9.15p5-3ubuntu5","architecture":"amd64"}]}`
	for _, tc := range []struct {
		raw  map[string]interface{}
		want []string // suffixes of the files written
	}{
		{map[string]interface{}{"sbom": "spdx"}, []string{".metadata.json", ".spdx.json", ".intoto.json"}},
		{map[string]interface{}{"sbom": "none", "provenance": false}, []string{".metadata.json"}},
		{map[string]interface{}{"provenance": false, "checksum_types": []string{"sha512"}}, []string{".metadata.json", ".cdx.json"}},
	} {
		image := filepath.Join(t.TempDir(), "node.qcow2")
		qcow2(t, image, "1G")
		a := &fakeArtifact{id: image, builder: "example.any-builder", files: []string{image}, state: map[string]interface{}{artifactstate.GuestFacts: facts}}
		var p PostProcessor
		if err := p.Configure(tc.raw); err != nil {
			t.Fatal(err)
		}
		out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, s := range append([]string{""}, tc.want...) {
			want = append(want, image+s)
		}
		if !slices.Equal(out.Files(), want) {
			t.Errorf("%v: files %v, want %v", tc.raw, out.Files(), want)
		}
		if slices.Contains(tc.want, ".spdx.json") {
			if err := docschema.Validate(docschema.SPDX23, mustRead(t, image+".spdx.json")); err != nil {
				t.Error(err)
			}
		}
	}
}

// Packer runs in the template's directory and artifacts name their files
// relative to it, like output_directory = "repo/<id>" with repository = "repo".
func TestPostProcessRelativePaths(t *testing.T) {
	t.Chdir(t.TempDir())
	image := filepath.Join("repo", "20261126", "node.qcow2")
	qcow2(t, image, "1G")
	a := &fakeArtifact{id: image, builder: "example.any-builder", files: []string{image}, state: map[string]interface{}{}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"repository": "repo", "packer_build_name": "node"}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a); err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join("repo", "SHA256SUMS"))
	if err != nil || !strings.Contains(string(sums), "  20261126/node.qcow2\n") || !strings.Contains(string(sums), "  20261126/node.qcow2.intoto.json\n") {
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
	// Without guest facts: no SBOM, but the provenance.
	if _, err := os.Stat(raw + ".cdx.json"); !os.IsNotExist(err) {
		t.Errorf("an SBOM without guest facts: %v", err)
	}
	if _, _, err := provenance.Parse(mustRead(t, raw+".intoto.json")); err != nil {
		t.Error(err)
	}
	if len(m.Sidecars) != 1 || m.Sidecars[0].Kind != imagemeta.SidecarProvenance {
		t.Errorf("sidecars %+v", m.Sidecars)
	}
}

func TestPostProcessMissingFile(t *testing.T) {
	a := &fakeArtifact{id: "/nonexistent/img.qcow2", builder: "example.any-builder", files: []string{"/nonexistent/img.qcow2"}, state: map[string]interface{}{}}
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
		{map[string]interface{}{"sbom": "syft"}, "sbom"},
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
			state[artifactstate.SourceImageURL] = srcURL
			state[artifactstate.SourceImageChecksum] = srcSum
		}
		a := &fakeArtifact{id: image, builder: "example.any-builder", files: []string{image}, state: state}
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
	if !strings.Contains(out, `keep_last = 1: removed the older image v1/node.qcow2 of "node" {stage=dev} from the repository (deleted v1/node.qcow2, v1/node.qcow2.intoto.json, v1/node.qcow2.metadata.json, v1)`) {
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

// Each image of an artifact gets its own metadata file (output rendered
// for it), listing only its own documents, and the post-processor's
// template context is left as Configure made it.
func TestPostProcessEachImageOwnRecord(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, n := range []string{"a.raw", "b.raw"} {
		f := filepath.Join(dir, n)
		if err := os.WriteFile(f, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	a := &fakeArtifact{id: "x", builder: "transcend.qemu", files: files, state: map[string]interface{}{}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"packer_build_name": "disks", "output": "{{ .ImagePath }}.meta.json"}); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(p.config.ctx.Data)
	out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(p.config.ctx.Data); after != before {
		t.Errorf("the template context's data changed from %s to %s", before, after)
	}
	for _, f := range files {
		m, err := imagemeta.ReadMetadata(f + ".meta.json")
		if err != nil {
			t.Fatal(err)
		}
		if m.Image.Path != filepath.Base(f) {
			t.Errorf("%s.meta.json describes %q", f, m.Image.Path)
		}
		for _, sc := range m.Sidecars {
			if !strings.HasPrefix(sc.Path, filepath.Base(f)) {
				t.Errorf("%s.meta.json lists %s, a document of another image", f, sc.Path)
			}
		}
	}
	if got := out.Files(); len(got) != 2+2*(1+1) { // the images; per image its metadata and provenance
		t.Errorf("artifact files %q, want the 2 images and 2 documents each", got)
	}
}
