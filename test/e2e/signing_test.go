//go:build e2e

package e2e

// The signed supply chain (issue #23), on TestScenarioBasic's builds: the
// real cosign (built by `make tools`) makes the key pairs, and verifies the
// image, its provenance and its SBOM that the metadata post-processor
// signed; tampered copies and the wrong key fail; chained builds with
// verify_key refuse an unsigned base and a base signed by another key
// before any VM starts; the key's password is in no file the builds leave.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// cosignKeys is a key pair cosign generated.
type cosignKeys struct {
	key, pub    string // cosign.key (encrypted) and cosign.pub paths
	password    string
	fingerprint string // hex SHA-256 of the public key's DER
}

// cosignBinary is tools/bin/cosign (make tools).
func cosignBinary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(suite.root, "tools", "bin", "cosign")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run make tools (%v)", p, err)
	}
	return p
}

// runCosign runs cosign in dir with env added; offline: its TUF cache is
// in dir and nothing it is asked needs the network.
func runCosign(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosignBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".sigstore")), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// newCosignKeys runs `cosign generate-key-pair --output-key-prefix name` in
// dir with a fresh password.
func newCosignKeys(t testing.TB, dir, name string) *cosignKeys {
	t.Helper()
	k := &cosignKeys{key: filepath.Join(dir, name+".key"), pub: filepath.Join(dir, name+".pub"), password: "pw-" + randHex(12)}
	if out, err := runCosign(t, dir, []string{"COSIGN_PASSWORD=" + k.password}, "generate-key-pair", "--output-key-prefix", name); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	pk, err := signing.LoadPublicKey(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	k.fingerprint = pk.Fingerprint
	return k
}

// cosignVerifyArgs are the offline flags: the key, no transparency log.
func cosignVerifyArgs(pub, bundle string) []string {
	return []string{"--key", pub, "--bundle", bundle, "--insecure-ignore-tlog=true"}
}

// checkSigned checks with cosign what the post-processor signed beside
// image with keys: the image (verify-blob), the provenance
// (verify-blob-attestation --type slsaprovenance1) and the SBOM (--type
// cyclonedx) verify; the bundles are listed in the metadata, index.json and
// SHA256SUMS; the metadata names the key's fingerprint. Then what must fail
// fails: a copy of the image with one byte flipped, the SBOM bundle with
// its SBOM edited, the wrong key (other).
func checkSigned(t *testing.T, image, repo, rel string, keys, other *cosignKeys) {
	t.Helper()
	dir := filepath.Dir(image)
	name := filepath.Base(image)
	var m struct {
		Signing *struct {
			KeyFingerprint string `json:"key_fingerprint"`
		} `json:"signing"`
		Sidecars []scSidecar `json:"sidecars"`
	}
	if err := json.Unmarshal(mustReadFile(t, image+".metadata.json"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Signing == nil || m.Signing.KeyFingerprint != keys.fingerprint {
		t.Errorf("metadata: signing %+v, want key_fingerprint %s", m.Signing, keys.fingerprint)
	}
	want := map[string]string{"signature": ".sigstore.json", "provenance-signature": ".provenance.sigstore.json", "sbom-signature": ".sbom.sigstore.json"}
	listed := map[string]string{}
	for _, sc := range m.Sidecars {
		listed[sc.Kind] = sc.Path
		if strings.HasSuffix(sc.Path, ".sigstore.json") && sc.SHA256 != fileSHA256(t, filepath.Join(dir, sc.Path)) {
			t.Errorf("metadata: %s sidecar sha256 %s is not the file's", sc.Path, sc.SHA256)
		}
	}
	for kind, suffix := range want {
		if listed[kind] != name+suffix {
			t.Errorf("metadata: %s sidecar %q, want %s", kind, listed[kind], name+suffix)
		}
	}
	idx := checkRepository(t, repo, rel) // every sidecar has its SHA256SUMS line
	if e := idx.entry(rel); e != nil {
		n := 0
		for _, sc := range e.Sidecars {
			if strings.HasSuffix(sc.Path, ".sigstore.json") {
				n++
			}
		}
		if n != 3 {
			t.Errorf("index.json: %s lists %d Sigstore bundles, want 3: %+v", rel, n, e.Sidecars)
		}
	}

	// cosign verify-blob-attestation reads the file into memory and
	// refuses one over 128 MiB unless COSIGN_MAX_ATTACHMENT_SIZE allows
	// it; --digest and --digestAlg give it the SHA-256 instead. Both ways
	// are used below (the file once: each read of the image costs seconds).
	bigFiles := []string{"COSIGN_MAX_ATTACHMENT_SIZE=4GiB"}
	sha := fileSHA256(t, image)
	verify := func(what string, wantOK bool, args ...string) {
		t.Helper()
		out, err := runCosign(t, dir, bigFiles, args...)
		if wantOK && err != nil {
			t.Errorf("cosign %s (%s): %v\n%s", strings.Join(args, " "), what, err, out)
		}
		if !wantOK && err == nil {
			t.Errorf("cosign verified %s: cosign %s\n%s", what, strings.Join(args, " "), out)
		}
	}
	blob := func(pub, bundle, file string) []string {
		return append(append([]string{"verify-blob"}, cosignVerifyArgs(pub, bundle)...), file)
	}
	att := func(pub, bundle, typ, file string) []string {
		return append(append([]string{"verify-blob-attestation"}, cosignVerifyArgs(pub, bundle)...), "--type", typ, file)
	}
	attDigest := func(pub, bundle, typ, sha string) []string {
		return append(append([]string{"verify-blob-attestation"}, cosignVerifyArgs(pub, bundle)...), "--type", typ, "--digest", sha, "--digestAlg", "sha256")
	}
	verify("the image", true, blob(keys.pub, name+".sigstore.json", name)...)
	verify("the provenance", true, att(keys.pub, name+".provenance.sigstore.json", "slsaprovenance1", name)...)
	verify("the SBOM", true, attDigest(keys.pub, name+".sbom.sigstore.json", "cyclonedx", sha)...)

	// One byte flipped in a copy of the image.
	work := t.TempDir()
	img := mustReadFile(t, image)
	img[len(img)/2] ^= 0x01
	flipped := filepath.Join(work, name)
	writeFile(t, flipped, img, 0o644)
	verify("a copy of the image with one byte flipped", false, blob(keys.pub, filepath.Join(dir, name+".sigstore.json"), flipped)...)
	// The SBOM edited inside its bundle (a component renamed).
	var b map[string]any
	if err := json.Unmarshal(mustReadFile(t, image+".sbom.sigstore.json"), &b); err != nil {
		t.Fatal(err)
	}
	env := b["dsseEnvelope"].(map[string]any)
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	edited := bytes.Replace(payload, []byte(`"cloud-init"`), []byte(`"cloud-evil"`), 1)
	if bytes.Equal(edited, payload) {
		t.Fatalf("the SBOM in %s.sbom.sigstore.json names no cloud-init", image)
	}
	env["payload"] = base64.StdEncoding.EncodeToString(edited)
	eb, _ := json.Marshal(b)
	editedBundle := filepath.Join(work, "edited.sbom.sigstore.json")
	writeFile(t, editedBundle, eb, 0o644)
	verify("an edited SBOM", false, attDigest(keys.pub, editedBundle, "cyclonedx", sha)...)
	// The wrong key.
	// (verify-blob takes sha256:<hex> for a file it does not read.)
	verify("the image with another key", false, blob(other.pub, name+".sigstore.json", "sha256:"+sha)...)
	verify("the image by digest", true, blob(keys.pub, name+".sigstore.json", "sha256:"+sha)...)
	verify("the provenance with another key", false, attDigest(other.pub, name+".provenance.sigstore.json", "slsaprovenance1", sha)...)
	verify("the provenance as an SBOM", false, attDigest(keys.pub, name+".provenance.sigstore.json", "cyclonedx", sha)...)
}

// testChainedRefused runs the chained template against a base the given
// keys cannot accept and checks that the build stops at the data source,
// before any VM, with the image, the fingerprints and the cause named.
func testChainedRefused(t *testing.T, repo string, verifyKeys []string, want ...string) {
	t.Helper()
	dir := copyScenario(t, "chained", testDir(t))
	keys, _ := json.Marshal(verifyKeys)
	vars := map[string]string{"repository": repo, "cell": "x", "image_id": "refused-" + randHex(4),
		"base_token": "x", "variant_token": "x", "verify_key": string(keys)}
	run := buildPacker(t, dir, buildArgs(vars, "variant.pkr.hcl")...)
	if run.ExitCode == 0 {
		t.Fatalf("the chained build from a base verify_key refuses succeeded:\n%s", run.Output)
	}
	// Packer wraps long error lines: compare with single spaces.
	flat := strings.Join(strings.Fields(run.Output), " ")
	for _, w := range append([]string{`image "basic" {scenario=basic}`, "refused by verify_key"}, want...) {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("the refused build's output lacks %q:\n%s", w, run.Output)
		}
	}
	if strings.Contains(run.Output, "Starting QEMU") || strings.Contains(run.Output, "Created the cidata seed") {
		t.Errorf("a VM was started although the base was refused:\n%s", run.Output)
	}
}
