package ociregistry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

func testSigner(t *testing.T, name string) *signing.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.ParseSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), signing.Password{}, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// What Attester attaches, Verify accepts with the right key and the asked
// name and labels, and refuses otherwise; an unsigned image is refused.
func TestAttesterAndVerify(t *testing.T) {
	ctx := context.Background()
	c := open(t, testRegistry(t, false))
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	signer, other := testSigner(t, "team.key"), testSigner(t, "other.key")
	dir := t.TempDir()
	prov, err := signing.NewStatement([]signing.Subject{{Name: "node.qcow2", SHA256: strings.Repeat("ab", 32)}}, signing.PredicateSLSAProvenance1,
		[]byte(`{"buildDefinition":{"buildType":"b","externalParameters":{"image_name":"node","labels":{"stage":"prod"}}},"runDetails":{"builder":{"id":"x"},"metadata":{"finishedOn":"2026-12-06T10:00:00Z"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	provPath := filepath.Join(dir, "node.qcow2.intoto.json")
	os.WriteFile(provPath, prov, 0o644)
	docs := []Document{{Path: provPath, ArtifactType: ArtifactTypeInToto}}
	attest, err := Attester(signer, []*signing.PublicKey{signer.PublicKey()}, docs)
	if err != nil {
		t.Fatal(err)
	}
	path, sha := disk(t, "node.qcow2", 4096, 7)
	signed, err := c.Push(ctx, Push{Image: image(path, sha, "amd64", created), Layout: LayoutArtifact, Documents: docs, Attest: attest, Tags: []string{"signed"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Describe(ctx, "signed", "amd64")
	if err != nil || e.Manifest.Digest != signed.Manifest.Digest {
		t.Fatalf("%+v %v", e, err)
	}
	k, err := c.Verify(ctx, e, []*signing.PublicKey{other.PublicKey(), signer.PublicKey()}, "node", map[string]string{"stage": "prod"})
	if err != nil || k.Fingerprint != signer.Fingerprint() {
		t.Fatalf("Verify: %v %v", k, err)
	}
	for _, tc := range []struct {
		keys   []*signing.PublicKey
		name   string
		labels map[string]string
		want   string
	}{
		{[]*signing.PublicKey{other.PublicKey()}, "node", nil, other.Fingerprint()},
		{[]*signing.PublicKey{signer.PublicKey()}, "base", nil, `image_name is "node", not "base"`},
		{[]*signing.PublicKey{signer.PublicKey()}, "node", map[string]string{"stage": "dev"}, `label stage is "prod", not "dev"`},
	} {
		if _, err := c.Verify(ctx, e, tc.keys, tc.name, tc.labels); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Verify(%s, %v): %v, want %q", tc.name, tc.labels, err, tc.want)
		}
	}
	// Unsigned: refused, naming the keys tried.
	p2, sha2 := disk(t, "node.qcow2", 4096, 8)
	if _, err := c.Push(ctx, Push{Image: image(p2, sha2, "amd64", created), Layout: LayoutArtifact, Tags: []string{"unsigned"}}); err != nil {
		t.Fatal(err)
	}
	u, _ := c.Describe(ctx, "unsigned", "amd64")
	if _, err := c.Verify(ctx, u, []*signing.PublicKey{signer.PublicKey()}, "node", nil); err == nil || !strings.Contains(err.Error(), "has no signature") || !strings.Contains(err.Error(), signer.Fingerprint()) {
		t.Errorf("unsigned: %v", err)
	}
}
