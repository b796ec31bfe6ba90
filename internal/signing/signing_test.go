package signing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// newKey is a fresh P-256 signer and its PKCS#8 PEM.
func newKey(t *testing.T) (*Signer, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	s, err := ParseSigner(p, Password{}, "test.key")
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func digestOf(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func TestSignBlobVerifies(t *testing.T) {
	s, _ := newKey(t)
	d := digestOf("image bytes")
	b, err := s.SignBlob(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	// The bundle is v0.3 with the key hint cosign writes.
	var raw struct {
		MediaType            string `json:"mediaType"`
		VerificationMaterial struct {
			PublicKey struct{ Hint string } `json:"publicKey"`
		} `json:"verificationMaterial"`
		MessageSignature struct {
			MessageDigest struct{ Algorithm, Digest string } `json:"messageDigest"`
		} `json:"messageSignature"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.MediaType != BundleMediaType {
		t.Errorf("mediaType %q", raw.MediaType)
	}
	fp, _ := hex.DecodeString(s.Fingerprint())
	if raw.VerificationMaterial.PublicKey.Hint != base64.StdEncoding.EncodeToString(fp) {
		t.Errorf("hint %q is not the base64 fingerprint %s", raw.VerificationMaterial.PublicKey.Hint, s.Fingerprint())
	}
	if raw.MessageSignature.MessageDigest.Algorithm != "SHA2_256" || raw.MessageSignature.MessageDigest.Digest != base64.StdEncoding.EncodeToString(d) {
		t.Errorf("message digest %+v", raw.MessageSignature.MessageDigest)
	}

	v, err := VerifyBlob(b, d, []*PublicKey{s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind != KindBlob || v.Key.Fingerprint != s.Fingerprint() || v.Statement != nil {
		t.Errorf("verified %+v", v)
	}
	// Another digest, another key, the wrong kind: refused.
	if _, err := VerifyBlob(b, digestOf("other bytes"), []*PublicKey{s.PublicKey()}); err == nil {
		t.Error("a bundle verified for another digest")
	}
	other, _ := newKey(t)
	_, err = VerifyBlob(b, d, []*PublicKey{other.PublicKey()})
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), other.Fingerprint()) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := VerifyAttestation(b, d, []*PublicKey{s.PublicKey()}, ""); err == nil || !strings.Contains(err.Error(), "not the expected attestation") {
		t.Errorf("blob bundle as attestation: %v", err)
	}
}

func TestRotationTriesEveryKey(t *testing.T) {
	old, _ := newKey(t)
	cur, _ := newKey(t)
	d := digestOf("x")
	b, err := old.SignBlob(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyBlob(b, d, []*PublicKey{cur.PublicKey(), old.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if v.Key.Fingerprint != old.Fingerprint() {
		t.Errorf("verified with %s", v.Key)
	}
	third, _ := newKey(t)
	_, err = VerifyBlob(b, d, []*PublicKey{cur.PublicKey(), third.PublicKey()})
	if err == nil {
		t.Fatal("verified with neither key")
	}
	for _, fp := range []string{cur.Fingerprint(), third.Fingerprint()} {
		if !strings.Contains(err.Error(), "sha256:"+fp) {
			t.Errorf("error does not name %s: %v", fp, err)
		}
	}
	if !strings.Contains(err.Error(), "any of the 2 keys") {
		t.Errorf("error: %v", err)
	}
}

func provenanceStatement(t *testing.T, sha string, name string, labels map[string]string) []byte {
	t.Helper()
	pred, err := json.Marshal(map[string]any{
		"buildDefinition": map[string]any{
			"buildType":          "https://example.org/t",
			"externalParameters": map[string]any{"image_name": name, "labels": labels},
		},
		"runDetails": map[string]any{"builder": map[string]any{"id": "https://example.org/b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStatement([]Subject{{Name: "img.qcow2", SHA256: sha}}, PredicateSLSAProvenance1, pred)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSignStatementVerifies(t *testing.T) {
	s, _ := newKey(t)
	d := digestOf("image")
	st := provenanceStatement(t, hex.EncodeToString(d), "base", map[string]string{"stage": "prod", "k8s": "1.31"})
	b, err := s.SignStatement(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		DsseEnvelope struct {
			Payload     string `json:"payload"`
			PayloadType string `json:"payloadType"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.DsseEnvelope.PayloadType != InTotoPayloadType {
		t.Errorf("payloadType %q", raw.DsseEnvelope.PayloadType)
	}
	if p, _ := base64.StdEncoding.DecodeString(raw.DsseEnvelope.Payload); !bytes.Equal(p, st) {
		t.Error("the envelope's payload is not the statement's exact bytes")
	}

	v, err := VerifyAttestation(b, d, []*PublicKey{s.PublicKey()}, PredicateSLSAProvenance1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind != KindAttestation || v.Statement == nil {
		t.Fatalf("verified %+v", v)
	}
	if err := CheckProvenance(v.Statement, "base", map[string]string{"stage": "prod"}); err != nil {
		t.Error(err)
	}
	err = CheckProvenance(v.Statement, "other", map[string]string{"stage": "dev", "zone": "a"})
	for _, want := range []string{`image_name is "base", not "other"`, `label stage is "prod", not "dev"`, "label zone is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckProvenance error %v lacks %q", err, want)
		}
	}

	// Wrong predicate type, another subject, a blob expected.
	if _, err := VerifyAttestation(b, d, []*PublicKey{s.PublicKey()}, PredicateCycloneDX); err == nil || !strings.Contains(err.Error(), "predicate type") {
		t.Errorf("predicate type: %v", err)
	}
	if _, err := VerifyAttestation(b, digestOf("another image"), []*PublicKey{s.PublicKey()}, ""); err == nil {
		t.Error("an attestation verified for a digest its subject does not name")
	}
	if _, err := VerifyBlob(b, d, []*PublicKey{s.PublicKey()}); err == nil {
		t.Error("an attestation verified as a blob signature")
	}

	// A payload edited after signing (an SBOM or provenance changed in the
	// bundle) does not verify.
	p, _ := base64.StdEncoding.DecodeString(raw.DsseEnvelope.Payload)
	edited := bytes.Replace(p, []byte(`"prod"`), []byte(`"prox"`), 1)
	tampered := bytes.Replace(b, []byte(raw.DsseEnvelope.Payload), []byte(base64.StdEncoding.EncodeToString(edited)), 1)
	if bytes.Equal(tampered, b) {
		t.Fatal("tampering did nothing")
	}
	if _, err := VerifyAttestation(tampered, d, []*PublicKey{s.PublicKey()}, ""); err == nil {
		t.Error("an edited payload verified")
	}
}

func TestStatementForManifestDigest(t *testing.T) {
	// A registry manifest digest is a subject like any other.
	s, _ := newKey(t)
	manifest := []byte(`{"schemaVersion":2}`)
	d := sha256.Sum256(manifest)
	st, err := NewStatement([]Subject{{SHA256: hex.EncodeToString(d[:])}}, PredicateCosignSign, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SignStatement(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAttestation(b, d[:], []*PublicKey{s.PublicKey()}, PredicateCosignSign); err != nil {
		t.Error(err)
	}
	bb, err := s.SignBlob(context.Background(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBlob(bb, d[:], []*PublicKey{s.PublicKey()}); err != nil {
		t.Error(err)
	}
}

func TestNewStatementKeepsPredicate(t *testing.T) {
	pred := []byte(`{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "serialNumber": "urn:uuid:x", "n": 12345678901234567890}`)
	st, err := NewStatement([]Subject{{Name: "a", SHA256: strings.Repeat("ab", 32)}}, PredicateCycloneDX, pred)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_ = json.Compact(&want, pred)
	if !bytes.Equal(p.Predicate, want.Bytes()) {
		t.Errorf("predicate %s, want %s", p.Predicate, want.Bytes())
	}
	if _, err := NewStatement(nil, PredicateCycloneDX, pred); err == nil {
		t.Error("a statement without subject")
	}
	if _, err := NewStatement([]Subject{{Name: "a", SHA256: "xyz"}}, PredicateCycloneDX, pred); err == nil {
		t.Error("a subject without a SHA-256")
	}
	if _, err := ParseStatement([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`)); err == nil {
		t.Error("an invalid statement parsed")
	}
}

func TestVerifyRejects(t *testing.T) {
	s, _ := newKey(t)
	d := digestOf("x")
	keys := []*PublicKey{s.PublicKey()}
	for name, b := range map[string][]byte{
		"not json":  []byte("nope"),
		"no bundle": []byte(`{}`),
	} {
		if _, err := VerifyBlob(b, d, keys); err == nil || !strings.Contains(err.Error(), "not a Sigstore bundle") {
			t.Errorf("%s: %v", name, err)
		}
	}
	b, _ := s.SignBlob(context.Background(), d)
	if _, err := VerifyBlob(b, d, nil); err == nil {
		t.Error("verified with no key")
	}
	if _, err := VerifyBlob(b, d[:10], keys); err == nil {
		t.Error("verified a short digest")
	}
	if _, err := s.SignBlob(context.Background(), d[:10]); err == nil {
		t.Error("signed a short digest")
	}
	if _, err := s.SignStatement(context.Background(), []byte(`{"not":"a statement"}`)); err == nil {
		t.Error("signed something that is not a statement")
	}
}

func TestKeyLoading(t *testing.T) {
	dir := t.TempDir()
	s, p := newKey(t)
	file := filepath.Join(dir, "plain.key")
	if err := os.WriteFile(file, p, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSigner(file, Password{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != s.Fingerprint() {
		t.Error("another fingerprint from the same key")
	}
	t.Setenv("CLOUDIMG_TEST_KEY", string(p))
	if got, err := LoadSigner("env://CLOUDIMG_TEST_KEY", Password{}); err != nil || got.Fingerprint() != s.Fingerprint() {
		t.Errorf("env key: %v", err)
	}
	if _, err := LoadSigner("env://CLOUDIMG_TEST_UNSET_VARIABLE", Password{}); err == nil || !strings.Contains(err.Error(), "CLOUDIMG_TEST_UNSET_VARIABLE") {
		t.Errorf("unset env: %v", err)
	}
	if _, err := LoadSigner(filepath.Join(dir, "missing.key"), Password{}); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing file: %v", err)
	}

	// The public key, and the fingerprint over its DER.
	pubPEM, _ := s.PublicKeyPEM()
	pubFile := filepath.Join(dir, "k.pub")
	_ = os.WriteFile(pubFile, pubPEM, 0o644)
	pk, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pubPEM)
	if sum := sha256.Sum256(blk.Bytes); pk.Fingerprint != hex.EncodeToString(sum[:]) || pk.Fingerprint != s.Fingerprint() {
		t.Errorf("fingerprint %s", pk.Fingerprint)
	}
	if !strings.Contains(pk.String(), "sha256:"+pk.Fingerprint) || !strings.Contains(pk.String(), pubFile) {
		t.Errorf("String %q", pk)
	}
	if _, err := LoadPublicKey(file); err == nil || !strings.Contains(err.Error(), "not a PUBLIC KEY") {
		t.Errorf("private key as public: %v", err)
	}
	if _, err := ParseSigner(pubPEM, Password{}, "x"); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("public key as private: %v", err)
	}

	// Other key types are refused with a reason.
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	if _, err := ParseSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Password{}, "x"); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Errorf("ed25519: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(p384)
	if _, err := ParseSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Password{}, "x"); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Errorf("p384: %v", err)
	}
}

// encryptedKey is cosign's key format, made with the library cosign uses,
// for the password logic (TestCosignKeys reads keys cosign itself wrote).
func encryptedKey(t *testing.T, password string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	enc, err := encrypted.Encrypt(der, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc})
}

func TestPassword(t *testing.T) {
	const secret = "s3cret-Pa55word-do-not-log"
	k := encryptedKey(t, secret)
	if _, err := ParseSigner(k, NewPassword(secret), "x"); err != nil {
		t.Fatal(err)
	}
	_, err := ParseSigner(k, Password{}, "x")
	if !errors.Is(err, ErrPassword) || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Errorf("no password: %v", err)
	}
	_, err = ParseSigner(k, NewPassword("wrong-"+secret), "x")
	if err == nil || !strings.Contains(err.Error(), "wrong password") || strings.Contains(err.Error(), secret) {
		t.Errorf("wrong password: %v", err)
	}

	t.Setenv(PasswordEnv, secret)
	if _, err := ParseSigner(k, PasswordFrom(""), "x"); err != nil {
		t.Errorf("COSIGN_PASSWORD: %v", err)
	}
	// The option wins over the environment.
	if _, err := ParseSigner(k, PasswordFrom("wrong"), "x"); err == nil {
		t.Error("COSIGN_PASSWORD won over the option")
	}
	// An empty password is a password when COSIGN_PASSWORD is set empty.
	t.Setenv(PasswordEnv, "")
	if _, err := ParseSigner(encryptedKey(t, ""), PasswordFrom(""), "x"); err != nil {
		t.Errorf("empty COSIGN_PASSWORD: %v", err)
	}

	p := NewPassword(secret)
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		if s := fmt.Sprintf(f, p); strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", f, s)
		}
	}
}
