package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
)

func TestConfigureErrors(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]interface{}
		want []string
	}{
		{map[string]interface{}{}, []string{"repository: required"}},
		{map[string]interface{}{"repository": "nodes"}, []string{"repository:", "name the registry host"}},
		{map[string]interface{}{"repository": "r.example/nodes:v1"}, []string{"names a tag or digest"}},
		{map[string]interface{}{"repository": "r.example/nodes", "tags": []string{"-bad"}, "layout": "tarball", "keep_last": -1},
			[]string{`tags[0]: "-bad"`, `layout: "tarball"`, "keep_last: must be 0"}},
		{map[string]interface{}{"repository": "r.example/nodes", "password": "s3cret"}, []string{"password: set username too"}},
		{map[string]interface{}{"repository": "r.example/nodes", "ca_file": "/nonexistent.pem"}, []string{"ca_file:"}},
	} {
		var p PostProcessor
		err := p.Configure(tc.raw)
		if err == nil {
			t.Errorf("%v: no error", tc.raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.raw, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the password is in the error %q", err)
		}
	}
}

// fakeArtifact is what cloudimg-metadata hands on: the image, its metadata
// and sidecars, and the builder's state.
type fakeArtifact struct {
	files []string
	state map[string]interface{}
}

func (a *fakeArtifact) BuilderId() string             { return "packer-cloudimg.metadata" }
func (a *fakeArtifact) Files() []string               { return a.files }
func (a *fakeArtifact) Id() string                    { return "id" }
func (a *fakeArtifact) String() string                { return "fake" }
func (a *fakeArtifact) State(name string) interface{} { return a.state[name] }
func (a *fakeArtifact) Destroy() error                { return nil }

// After cloudimg-metadata: the image its metadata describes, with the SBOM
// and provenance as referrers; alone: the image file with image_name and
// labels.
func TestPostProcess(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")

	dir := t.TempDir()
	img := filepath.Join(dir, "node.qcow2")
	os.WriteFile(img, []byte("disk bytes"), 0o644)
	sum := sha256.Sum256([]byte("disk bytes"))
	sha := hex.EncodeToString(sum[:])
	os.WriteFile(img+".cdx.json", []byte(`{"bomFormat":"CycloneDX"}`), 0o644)
	os.WriteFile(img+".intoto.json", []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), 0o644)
	meta := imagemeta.Metadata{
		Image:    imagemeta.Image{Name: "node", Path: "node.qcow2", Format: "qcow2", Checksums: map[string]string{"sha256": sha}, Arch: "amd64"},
		Build:    imagemeta.Build{PackerRunUUID: "run-1", FinishedAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)},
		Labels:   map[string]string{"stage": "prod"},
		VCS:      &imagemeta.VCS{Commit: "abc123", Remote: "https://user:tok@git.example.org/t.git"},
		Sidecars: []imagemeta.Sidecar{{Kind: imagemeta.SidecarCycloneDX, Path: "node.qcow2.cdx.json"}, {Kind: imagemeta.SidecarProvenance, Path: "node.qcow2.intoto.json"}},
	}
	if err := imagemeta.WriteMetadata(img+".metadata.json", &meta); err != nil {
		t.Fatal(err)
	}
	art := &fakeArtifact{files: []string{img, img + ".metadata.json", img + ".cdx.json", img + ".intoto.json"}}

	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"repository": host + "/team/nodes", "tags": []string{"latest"}, "plain_http": true,
		"layout": "artifact", "packer_build_name": "ignored"}); err != nil {
		t.Fatal(err)
	}
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), art)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || !force || !strings.HasPrefix(out.Id(), "oci://"+host+"/team/nodes@sha256:") || len(out.Files()) != 4 {
		t.Errorf("artifact %s (%v, %v), files %v", out.Id(), keep, force, out.Files())
	}
	ref, _ := ociregistry.ParseReference(host + "/team/nodes")
	c, _ := ociregistry.Open(ref, ociregistry.Options{PlainHTTP: true})
	e, err := c.Describe(context.Background(), "latest", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "node" || e.SHA256 != sha || e.BuildID != "run-1" || e.Labels["stage"] != "prod" || e.Ref.URL() != out.Id() {
		t.Errorf("pushed %+v", e)
	}

	// Alone: the builder's artifact, named by image_name.
	var alone PostProcessor
	if err := alone.Configure(map[string]interface{}{"repository": host + "/team/nodes", "plain_http": true, "image_name": "solo",
		"labels": map[string]string{"stage": "dev"}}); err != nil {
		t.Fatal(err)
	}
	builder := &fakeArtifact{files: []string{img}, state: map[string]interface{}{artifactstate.Arch: "arm64"}}
	if _, _, _, err := alone.PostProcess(context.Background(), packersdk.TestUi(t), builder); err != nil {
		t.Fatal(err)
	}
	n, err := c.Newest(context.Background(), "solo", map[string]string{"stage": "dev"}, "arm64")
	if err != nil || n.SHA256 != sha {
		t.Errorf("alone: %+v %v", n, err)
	}
}
