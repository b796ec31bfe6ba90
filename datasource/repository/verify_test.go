package repository

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// newSigner is a fresh P-256 key and its public key file in dir.
func newSigner(t *testing.T, dir, name string) (*signing.Signer, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	s, err := signing.ParseSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), signing.Password{}, name)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := s.PublicKeyPEM()
	path := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(path, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// signImage writes the two bundles the post-processor writes for the image
// at rel in dir, its provenance naming name and labels.
func signImage(t *testing.T, s *signing.Signer, dir, rel, name string, labels map[string]string, finished time.Time) {
	t.Helper()
	p := filepath.Join(dir, rel)
	sums, _, err := imagemeta.HashFileContext(context.Background(), p, []string{"sha256"})
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString(sums["sha256"])
	b, err := s.SignBlob(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".sigstore.json", b, 0o644); err != nil {
		t.Fatal(err)
	}
	pred, _ := json.Marshal(map[string]any{"buildDefinition": map[string]any{"buildType": "https://example.org/t",
		"externalParameters": map[string]any{"image_name": name, "labels": labels}}, "runDetails": map[string]any{"builder": map[string]any{"id": "x"}, "metadata": map[string]any{"finishedOn": finished.Format(time.RFC3339)}}})
	st, err := signing.NewStatement([]signing.Subject{{Name: filepath.Base(p), SHA256: sums["sha256"]}}, signing.PredicateSLSAProvenance1, pred)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = s.SignStatement(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".provenance.sigstore.json", b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyKey(t *testing.T) {
	dir := makeRepo(t)
	keys := t.TempDir()
	team, teamPub := newSigner(t, keys, "team")
	_, oldPub := newSigner(t, keys, "old")
	other, _ := newSigner(t, keys, "other")
	labels := map[string]string{"os": "debian-12"}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC) // makeRepo's
	signImage(t, team, dir, "b2/base.qcow2", "base", labels, t0.Add(time.Hour))
	// b1 is an older, validly signed image of the same name and labels.
	signImage(t, team, dir, "b1/base.qcow2", "base", labels, t0)
	// b3 (os=debian-13) is signed, but by another key.
	signImage(t, other, dir, "b3/base.qcow2", "base", map[string]string{"os": "debian-13"}, t0.Add(2*time.Hour))

	run := func(loc string, labels map[string]string, keys ...string) (string, error) {
		t.Helper()
		d := Datasource{}
		if err := d.Configure(map[string]interface{}{"repository": loc, "image_name": "base", "labels": labels, "verify_key": keys}); err != nil {
			t.Fatal(err)
		}
		v, err := d.Execute()
		if err != nil {
			return "", err
		}
		return v.GetAttr("key_fingerprint").AsString(), nil
	}
	// Rotation: the old key first, the team's second.
	fp, err := run(dir, labels, oldPub, teamPub)
	if err != nil {
		t.Fatal(err)
	}
	if fp != team.Fingerprint() {
		t.Errorf("key_fingerprint %s, want %s", fp, team.Fingerprint())
	}
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(dir))))
	defer srv.Close()
	d := Datasource{client: srv.Client()}
	if err := d.Configure(map[string]interface{}{"repository": srv.URL + "/repo/", "image_name": "base", "labels": labels, "verify_key": []string{teamPub}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Execute(); err != nil {
		t.Errorf("over http: %v", err)
	}

	// Signed by another key: refused, naming the image and each key tried.
	_, err = run(dir, map[string]string{"os": "debian-13"}, oldPub, teamPub)
	for _, want := range []string{`image "base" {os=debian-13}`, "b3/base.qcow2", "refused by verify_key", "does not verify with any of the 2 keys",
		"sha256:" + team.Fingerprint(), oldPub} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("other key: %v lacks %q", err, want)
		}
	}

	// The older image swapped in by editing index.json: the newest entry
	// now names b1's file and checksum (and b1's metadata agrees), so both
	// of b1's bundles verify and name "base" {os=debian-12} — but b1's
	// provenance finished an hour before the entry says.
	idxPath := filepath.Join(dir, "index.json")
	idx, _ := os.ReadFile(idxPath)
	var ix imagemeta.Index
	if err := json.Unmarshal(idx, &ix); err != nil {
		t.Fatal(err)
	}
	var b1 imagemeta.IndexEntry
	for _, e := range ix.Images {
		if e.Path == "b1/base.qcow2" {
			b1 = e
		}
	}
	for i, e := range ix.Images {
		if e.Path == "b2/base.qcow2" {
			ix.Images[i].Path, ix.Images[i].Checksums, ix.Images[i].Sidecars = b1.Path, b1.Checksums, b1.Sidecars
		}
	}
	swapped, _ := json.Marshal(ix)
	if err := os.WriteFile(idxPath, swapped, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dir, labels, teamPub); err == nil || !strings.Contains(err.Error(), "the signed provenance says the build finished at 2026-11-26T09:00:00Z, index.json says 2026-11-26T10:00:00Z") {
		t.Errorf("swapped entry: %v", err)
	}
	if err := os.WriteFile(idxPath, idx, 0o644); err != nil {
		t.Fatal(err)
	}

	// A validly signed image of other labels swapped in: its provenance
	// says so. (Re-sign b2 as if built for debian-14.)
	signImage(t, team, dir, "b2/base.qcow2", "base", map[string]string{"os": "debian-14"}, t0.Add(time.Hour))
	if _, err := run(dir, labels, teamPub); err == nil || !strings.Contains(err.Error(), `label os is "debian-14", not "debian-12"`) {
		t.Errorf("other labels: %v", err)
	}

	// Unsigned: refused, naming the missing bundle and the keys.
	for _, f := range []string{"b2/base.qcow2.sigstore.json"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	_, err = run(dir, labels, teamPub)
	for _, want := range []string{"it is not signed", "b2/base.qcow2.sigstore.json", "not found", "sha256:" + team.Fingerprint()} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unsigned: %v lacks %q", err, want)
		}
	}

	// A bad verify_key is a configuration error naming the option.
	var bad Datasource
	if err := bad.Configure(map[string]interface{}{"repository": dir, "image_name": "base", "verify_key": []string{filepath.Join(keys, "nope.pub")}}); err == nil || !strings.Contains(err.Error(), "verify_key[0]") {
		t.Errorf("missing key file: %v", err)
	}
}
