package oci

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/packertest"
)

// cosignBinary is the real cosign (packertest.Cosign).
func cosignBinary(t *testing.T) string { return packertest.Cosign(t, "../..") }

// The real cosign, with a key pair it made, verifies the signature and the
// provenance and SBOM attestations cloudimg-oci attaches to a pushed image
// (as cosign v3 reads them, offline), and refuses another key.
func TestCosignVerifiesPushedImage(t *testing.T) {
	bin := cosignBinary(t)
	dir := t.TempDir()
	const password = "oci-test-password"
	cosign := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".sigstore"), "DOCKER_CONFIG="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cosign("generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(dir, "other"), 0o755)
	if out, err := cosign("generate-key-pair", "--output-key-prefix", "other/cosign"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")

	img := filepath.Join(dir, "node.qcow2")
	os.WriteFile(img, []byte("disk bytes"), 0o644)
	prov, err := signing.NewStatement([]signing.Subject{{Name: "node.qcow2", SHA256: strings.Repeat("1f", 32)}}, signing.PredicateSLSAProvenance1,
		[]byte(`{"buildDefinition":{"buildType":"https://example.org/b","externalParameters":{"image_name":"node"}},"runDetails":{"builder":{"id":"x"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(img+".intoto.json", prov, 0o644)
	os.WriteFile(img+".cdx.json", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), 0o644)
	sums, _, _ := imagemeta.HashFile(img, []string{"sha256"})
	meta := imagemeta.Metadata{
		Image:    imagemeta.Image{Name: "node", Path: "node.qcow2", Format: "qcow2", Checksums: sums, Arch: "amd64"},
		Build:    imagemeta.Build{PackerRunUUID: "run-1", FinishedAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)},
		Sidecars: []imagemeta.Sidecar{{Kind: imagemeta.SidecarCycloneDX, Path: "node.qcow2.cdx.json"}, {Kind: imagemeta.SidecarProvenance, Path: "node.qcow2.intoto.json"}},
	}
	if err := imagemeta.WriteMetadata(img+".metadata.json", &meta); err != nil {
		t.Fatal(err)
	}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"repository": host + "/team/nodes", "tags": []string{"latest"}, "plain_http": true,
		"metadata_files": []string{img + ".metadata.json"}, "key_file": filepath.Join(dir, "cosign.key"), "key_password": password}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), &fakeArtifact{}); err != nil {
		t.Fatal(err)
	}
	ref := host + "/team/nodes:latest"
	offline := []string{"--insecure-ignore-tlog=true", "--allow-http-registry=true"}
	if out, err := cosign(append([]string{"verify", "--key", "cosign.pub"}, append(offline, ref)...)...); err != nil {
		t.Errorf("cosign verify: %v\n%s", err, out)
	}
	for _, typ := range []string{"slsaprovenance1", "cyclonedx"} {
		if out, err := cosign(append([]string{"verify-attestation", "--key", "cosign.pub", "--type", typ}, append(offline, ref)...)...); err != nil {
			t.Errorf("cosign verify-attestation --type %s: %v\n%s", typ, err, out)
		}
	}
	if out, err := cosign(append([]string{"verify", "--key", "other/cosign.pub"}, append(offline, ref)...)...); err == nil {
		t.Errorf("cosign verify with another key passed:\n%s", out)
	}
}
