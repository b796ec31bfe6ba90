package signing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/packertest"
)

// The real cosign (built by `make tools` into tools/bin, or named by
// CLOUDIMG_COSIGN) writes the keys these tests read and verifies what this
// package signs. `make unit` sets CLOUDIMG_REQUIRE_COSIGN=1, so that there
// a missing cosign fails instead of skipping.

// cosignBinary is the real cosign (packertest.Cosign).
func cosignBinary(t *testing.T) string { return packertest.Cosign(t, "../..") }

// cosign runs the binary in dir with COSIGN_PASSWORD=password and no
// network need; it returns the combined output and the error.
func cosign(t *testing.T, bin, dir, password string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".sigstore"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCosignKeys(t *testing.T) {
	bin := cosignBinary(t)
	dir := t.TempDir()
	const password = "cosign-test-password"
	if out, err := cosign(t, bin, dir, password, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyPEM, []byte("ENCRYPTED SIGSTORE PRIVATE KEY")) {
		t.Fatalf("cosign wrote a key of another kind:\n%s", keyPEM[:40])
	}
	s, err := LoadSigner(filepath.Join(dir, "cosign.key"), NewPassword(password))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if pub.Fingerprint != s.Fingerprint() {
		t.Fatalf("cosign.pub %s, cosign.key %s", pub.Fingerprint, s.Fingerprint())
	}
	if _, err := LoadSigner(filepath.Join(dir, "cosign.key"), NewPassword("not-"+password)); err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("wrong password: %v", err)
	}
	t.Setenv("CLOUDIMG_TEST_COSIGN_KEY", string(keyPEM))
	t.Setenv(PasswordEnv, password)
	if es, err := LoadSigner("env://CLOUDIMG_TEST_COSIGN_KEY", PasswordFrom("")); err != nil || es.Fingerprint() != s.Fingerprint() {
		t.Errorf("env:// key with COSIGN_PASSWORD: %v", err)
	}

	// What we sign, cosign verifies (offline: key, no transparency log).
	img := filepath.Join(dir, "image.qcow2")
	writeFile(t, img, []byte("a disk image, byte by byte"))
	sum := sha256.Sum256([]byte("a disk image, byte by byte"))
	ctx := context.Background()
	blob, err := s.SignBlob(ctx, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, img+".sigstore.json", blob)
	verifyBlob := []string{"verify-blob", "--key", "cosign.pub", "--bundle", "image.qcow2.sigstore.json", "--insecure-ignore-tlog=true"}
	if out, err := cosign(t, bin, dir, "", append(verifyBlob, "image.qcow2")...); err != nil {
		t.Errorf("cosign verify-blob: %v\n%s", err, out)
	}

	prov := provenanceStatement(t, hex.EncodeToString(sum[:]), "base", map[string]string{"stage": "prod"})
	sbomStmt, err := NewStatement([]Subject{{Name: "image.qcow2", SHA256: hex.EncodeToString(sum[:])}}, PredicateCycloneDX,
		[]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, typ string
		st        []byte
	}{
		{"image.qcow2.provenance.sigstore.json", "slsaprovenance1", prov},
		{"image.qcow2.sbom.sigstore.json", "cyclonedx", sbomStmt},
	} {
		b, err := s.SignStatement(ctx, c.st)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, c.name), b)
		args := []string{"verify-blob-attestation", "--key", "cosign.pub", "--bundle", c.name, "--type", c.typ, "--insecure-ignore-tlog=true", "image.qcow2"}
		if out, err := cosign(t, bin, dir, "", args...); err != nil {
			t.Errorf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		// The wrong --type fails.
		wrong := "spdxjson"
		args[6] = wrong
		if out, err := cosign(t, bin, dir, "", args...); err == nil {
			t.Errorf("cosign verified %s as %s:\n%s", c.name, wrong, out)
		}
	}

	// A byte flipped in the image: cosign refuses.
	tampered := filepath.Join(dir, "tampered.qcow2")
	writeFile(t, tampered, []byte("a disk image, byte by bytE"))
	if out, err := cosign(t, bin, dir, "", append(verifyBlob, "tampered.qcow2")...); err == nil {
		t.Errorf("cosign verified a tampered image:\n%s", out)
	}

	// And what cosign signs with its key, this package verifies.
	if out, err := cosign(t, bin, dir, password, "sign-blob", "--key", "cosign.key", "--bundle", "cosign-made.sigstore.json",
		"--tlog-upload=false", "--use-signing-config=false", "--yes", "image.qcow2"); err != nil {
		t.Fatalf("cosign sign-blob: %v\n%s", err, out)
	}
	made, err := os.ReadFile(filepath.Join(dir, "cosign-made.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := VerifyBlob(made, sum[:], []*PublicKey{pub}); err != nil {
		t.Errorf("cosign's own bundle: %v\n%s", err, made)
	} else if v.Key.Fingerprint != pub.Fingerprint {
		t.Errorf("verified with %s", v.Key)
	}
}
