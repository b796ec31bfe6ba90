package metadata

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// testKey writes cosign's encrypted key format (made with the library cosign
// uses; internal/signing's tests read keys cosign itself wrote) and the
// public key, and returns their paths.
func testKey(t *testing.T, dir, password string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	enc, err := encrypted.Encrypt(der, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
	key, pub := filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
}

func TestPostProcessSigns(t *testing.T) {
	const password = "pp-test-Secret-42"
	keys := t.TempDir()
	key, pub := testKey(t, keys, password)
	repo := t.TempDir()
	image := filepath.Join(repo, "b1", "node.qcow2")
	qcow2(t, image, "1G")
	facts := `{"os_release":{"ID":"debian","VERSION_ID":"12"},"package_manager":"dpkg","packages":[{"name":"sudo","version":"1.9.13p3-1+deb12u1","architecture":"amd64"}]}`
	a := &fakeArtifact{id: image, builder: "example.any-builder", files: []string{image}, state: map[string]interface{}{artifactstate.GuestFacts: facts}}
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{
		"repository": repo, "labels": map[string]string{"stage": "prod"}, "packer_build_name": "node",
		"key_file": key, "key_password": password, "verifier": []string{pub},
	}); err != nil {
		t.Fatal(err)
	}
	ui := packersdk.TestUi(t)
	out, _, _, err := p.PostProcess(context.Background(), ui, a)
	if err != nil {
		t.Fatal(err)
	}
	suffixes := []string{"", ".metadata.json", ".cdx.json", ".intoto.json", ".sigstore.json", ".sbom.sigstore.json", ".provenance.sigstore.json"}
	var want []string
	for _, s := range suffixes {
		want = append(want, image+s)
	}
	if !slices.Equal(out.Files(), want) {
		t.Fatalf("files %v, want %v", out.Files(), want)
	}
	m, err := imagemeta.ReadMetadata(image + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	pk, err := signing.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if m.Signing == nil || m.Signing.KeyFingerprint != pk.Fingerprint {
		t.Errorf("signing = %+v, want fingerprint %s", m.Signing, pk.Fingerprint)
	}
	kinds := map[string]string{}
	for _, sc := range m.Sidecars {
		kinds[sc.Kind] = sc.Path
	}
	for kind, path := range map[string]string{imagemeta.SidecarSignature: "node.qcow2.sigstore.json",
		imagemeta.SidecarProvenanceSignature: "node.qcow2.provenance.sigstore.json", imagemeta.SidecarSBOMSignature: "node.qcow2.sbom.sigstore.json"} {
		if kinds[kind] != path {
			t.Errorf("metadata sidecar %s = %q, want %q", kind, kinds[kind], path)
		}
	}
	idx, err := (&imagemeta.Repo{Dir: repo}).ReadIndex()
	if err != nil || len(idx.Images) != 1 || len(idx.Images[0].Sidecars) != 6 {
		t.Fatalf("index %+v, %v", idx, err)
	}
	sums := string(mustRead(t, filepath.Join(repo, "SHA256SUMS")))
	for _, s := range []string{"b1/node.qcow2.sigstore.json", "b1/node.qcow2.provenance.sigstore.json", "b1/node.qcow2.sbom.sigstore.json"} {
		if !strings.Contains(sums, s) {
			t.Errorf("SHA256SUMS lacks %s:\n%s", s, sums)
		}
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}

	// Each bundle verifies against the image's digest; the provenance
	// bundle holds the exact bytes of <image>.intoto.json, names the image
	// and its labels; the SBOM bundle's predicate is the SBOM.
	digest, _ := hex.DecodeString(m.Image.Checksums["sha256"])
	keys2 := []*signing.PublicKey{pk}
	if _, err := signing.VerifyBlob(mustRead(t, image+".sigstore.json"), digest, keys2); err != nil {
		t.Error(err)
	}
	v, err := signing.VerifyAttestation(mustRead(t, image+".provenance.sigstore.json"), digest, keys2, signing.PredicateSLSAProvenance1)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.CheckProvenance(v.Statement, "node", map[string]string{"stage": "prod"}); err != nil {
		t.Error(err)
	}
	st, _ := signing.ParseStatement(mustRead(t, image+".intoto.json"))
	if string(st.Predicate) != string(v.Statement.Predicate) {
		t.Error("the signed provenance is not the one written beside the image")
	}
	sb, err := signing.VerifyAttestation(mustRead(t, image+".sbom.sigstore.json"), digest, keys2, signing.PredicateCycloneDX)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sb.Statement.Predicate), `"sudo"`) {
		t.Errorf("the SBOM bundle's predicate: %.200s", sb.Statement.Predicate)
	}

	// The password is in no file written.
	for _, f := range out.Files()[1:] {
		if strings.Contains(string(mustRead(t, f)), password) {
			t.Errorf("%s holds the password", f)
		}
	}
}

func TestConfigureSigningErrors(t *testing.T) {
	const password = "cfg-Secret-77"
	dir := t.TempDir()
	key, pub := testKey(t, dir, password)
	_, otherPub := testKey(t, t.TempDir(), "x")
	t.Setenv(signing.PasswordEnv, "")
	os.Unsetenv(signing.PasswordEnv)
	for _, tc := range []struct {
		raw  map[string]interface{}
		want string
	}{
		{map[string]interface{}{"key_file": key}, "COSIGN_PASSWORD"},
		{map[string]interface{}{"key_file": key, "key_password": "wrong"}, "wrong password"},
		{map[string]interface{}{"key_file": filepath.Join(dir, "nope.key"), "key_password": password}, "key_file: private key " + filepath.Join(dir, "nope.key")},
		{map[string]interface{}{"key_file": pub}, "public key"},
		{map[string]interface{}{"signing_mode": "key"}, "key_file: required"},
		{map[string]interface{}{"signing_mode": "keyless"}, "Fulcio"},
		{map[string]interface{}{"signing_mode": "none", "key_file": key}, "signing_mode = \"none\""},
		{map[string]interface{}{"signing_mode": "pgp"}, "signing_mode"},
		{map[string]interface{}{"key_file": key, "key_password": password, "verifier": []string{filepath.Join(dir, "nope.pub")}}, "verifier[0]"},
	} {
		var p PostProcessor
		err := p.Configure(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.raw, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%v: the error shows the password: %v", tc.raw, err)
		}
	}

	// A verifier that is not the signing key stops the build before any
	// file is written.
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"key_file": key, "key_password": password, "verifier": []string{otherPub}, "sbom": "none"}); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "x.qcow2")
	qcow2(t, image, "1G")
	_, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), &fakeArtifact{id: image, builder: "b", files: []string{image}, state: map[string]interface{}{}})
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("wrong verifier: %v", err)
	}
	if _, err := os.Stat(image + ".sigstore.json"); err == nil {
		t.Error("a bundle was written although it did not verify")
	}
	// Signing adds sha256 to checksum_types: the bundles sign it.
	var r PostProcessor
	if err := r.Configure(map[string]interface{}{"key_file": key, "key_password": password, "checksum_types": []string{"sha512"}, "sbom": "none", "provenance": false}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.config.ChecksumTypes, "sha256") {
		t.Errorf("checksum_types %v: no sha256 to sign", r.config.ChecksumTypes)
	}
	// COSIGN_PASSWORD is read when key_password is not set.
	t.Setenv(signing.PasswordEnv, password)
	var q PostProcessor
	if err := q.Configure(map[string]interface{}{"key_file": key}); err != nil {
		t.Errorf("COSIGN_PASSWORD: %v", err)
	}
}
