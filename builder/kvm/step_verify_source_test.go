package kvm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

func testSigner(t *testing.T) *signing.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	s, err := signing.ParseSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), signing.Password{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStepVerifySource(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "base.qcow2")
	content := []byte("the base image")
	if err := os.WriteFile(img, content, 0o644); err != nil {
		t.Fatal(err)
	}
	team, other := testSigner(t), testSigner(t)
	sum := sha256.Sum256(content)
	bundle, err := team.SignBlob(context.Background(), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	run := func(urls []string, keys ...*signing.PublicKey) error {
		t.Helper()
		cfg := &Config{verifyKeys: keys}
		cfg.ISOUrls = urls
		state := stepState(t, cfg, &fakeDriver{})
		state.Put("iso_path", img)
		s := &stepVerifySource{client: srv.Client()}
		if s.Run(context.Background(), state) == multistep.ActionContinue {
			return nil
		}
		return state.Get("error").(error)
	}
	// Without verify_key nothing is checked.
	if err := run([]string{img}); err != nil {
		t.Fatal(err)
	}
	// Unsigned: refused, naming the image, where the bundle was looked for and the keys.
	err = run([]string{img}, team.PublicKey())
	for _, w := range []string{"source image " + img, "it is not signed", img + ".sigstore.json", "sha256:" + team.Fingerprint()} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("unsigned: %v lacks %q", err, w)
		}
	}
	if err := os.WriteFile(img+".sigstore.json", bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{img, "file://" + img, srv.URL + "/base.qcow2"} {
		if err := run([]string{u}, other.PublicKey(), team.PublicKey()); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// iso_urls: the first with a bundle counts.
	if err := run([]string{srv.URL + "/missing/base.qcow2", srv.URL + "/base.qcow2"}, team.PublicKey()); err != nil {
		t.Errorf("mirrors: %v", err)
	}
	// Another key: refused with its fingerprint.
	err = run([]string{srv.URL + "/base.qcow2"}, other.PublicKey())
	for _, w := range []string{"refused", "does not verify with the key sha256:" + other.Fingerprint(), srv.URL + "/base.qcow2.sigstore.json"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("other key: %v lacks %q", err, w)
		}
	}
	// The file changed after signing: refused.
	if err := os.WriteFile(img, []byte("the base image, changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{img}, team.PublicKey()); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("tampered: %v", err)
	}
}
