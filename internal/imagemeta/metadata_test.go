package imagemeta

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

func fullMetadata() *Metadata {
	paris := time.FixedZone("CET", 3600)
	return &Metadata{
		Image: Image{
			Name:             "debian-12-base",
			Path:             "debian-12/debian-12-base-20250102.qcow2",
			Format:           FormatQCOW2,
			SizeBytes:        524288000,
			VirtualSizeBytes: 10737418240,
			Checksums: map[string]string{
				"sha512": strings.Repeat("ab", 64),
				"sha256": strings.Repeat("cd", 32),
			},
		},
		Source: &Source{
			URL:      "https://user:s3cret@cloud.example.org/images/debian-12-generic-amd64.qcow2?a=1&b=2",
			Checksum: "sha256:" + strings.Repeat("ef", 32),
		},
		Build: Build{
			Name:          "debian",
			SourceName:    "kvm.debian",
			BuilderType:   "cloudimg-kvm",
			PackerRunUUID: "0b5c8e3a-3f7d-4f3e-9d0a-5b1c2d3e4f50",
			StartedAt:     time.Date(2025, 1, 2, 11, 4, 5, 987654321, paris),
			FinishedAt:    time.Date(2025, 1, 2, 10, 14, 59, 0, time.UTC),
			PluginVersion: "0.1.0",
			PackerVersion: "1.11.2",
		},
		VCS: &VCS{
			Commit: strings.Repeat("0123456789", 4),
			Branch: "main",
			Remote: "https://ghp_token@github.com/example/images.git",
			Dirty:  true,
		},
		Labels: map[string]string{"team": "platform", "channel": "stable", "<html>": "a&b"},
		Guest:  json.RawMessage(`{"os":{"id":"debian","version_id":"12"},"packages":   ["openssh-server","cloud-init"]}`),
	}
}

func TestMetadataGolden(t *testing.T) {
	m := fullMetadata()
	b, err := MarshalMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "metadata_full.json", b)
	if m.SchemaVersion != 0 || !strings.Contains(m.Source.URL, "s3cret") {
		t.Error("MarshalMetadata modified its argument")
	}
	for _, secret := range []string{"s3cret", "ghp_token", "user:"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("credential %q leaked into the document", secret)
		}
	}
	// Deterministic: same input, same bytes, whatever the map order.
	for range 20 {
		again, _ := MarshalMetadata(fullMetadata())
		if !bytes.Equal(again, b) {
			t.Fatal("MarshalMetadata is not deterministic")
		}
	}

	minimal := &Metadata{Image: Image{Name: "x", Path: "x.raw", Format: FormatRaw, SizeBytes: 1, VirtualSizeBytes: 1, Checksums: map[string]string{"sha256": strings.Repeat("0", 64)}}}
	b, err = MarshalMetadata(minimal)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "metadata_minimal.json", b)
}

func TestMetadataRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.json")
	m := fullMetadata()
	if err := WriteMetadata(p, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	got, err := ReadMetadata(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.SchemaVersion != SchemaVersion || got.Image.Checksums["sha256"] != m.Image.Checksums["sha256"] ||
		!got.Build.StartedAt.Equal(m.Build.StartedAt.Truncate(time.Second)) || got.VCS.Remote != "https://github.com/example/images.git" {
		t.Errorf("round trip: %+v", got)
	}

	bad := fullMetadata()
	bad.Guest = json.RawMessage(`{"unterminated":`)
	if _, err := MarshalMetadata(bad); err == nil {
		t.Error("invalid guest JSON: want error")
	}
	bad = fullMetadata()
	bad.SchemaVersion = 2
	if _, err := MarshalMetadata(bad); err == nil {
		t.Error("schema 2: want error")
	}
	if err := WriteMetadata(filepath.Join(dir, "missing-dir", "m.json"), m); err == nil {
		t.Error("missing directory: want error")
	}
	if _, err := MarshalMetadata(nil); err == nil {
		t.Error("nil: want error")
	}
}

func TestDescribeImage(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile(filepath.Join("testdata", "v3.qcow2"))
	img := filepath.Join(dir, "out", "disk.qcow2")
	os.MkdirAll(filepath.Dir(img), 0o755)
	if err := os.WriteFile(img, src, 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := DescribeImage(context.Background(), img, filepath.Join(dir, "meta", "disk.json"), DefaultAlgorithms())
	if err != nil {
		t.Fatal(err)
	}
	want := wantSums(src)
	if im.Path != "../out/disk.qcow2" || im.Format != FormatQCOW2 || im.VirtualSizeBytes != 10<<30 ||
		im.SizeBytes != int64(len(src)) || im.Checksums["sha256"] != want["sha256"] || im.Checksums["sha512"] != want["sha512"] {
		t.Errorf("DescribeImage = %+v", im)
	}
}

// headReader keeps the first bytes however the reads are split.
func TestHeadReader(t *testing.T) {
	src := []byte("QFI\xfb and the rest of a header")
	h := &headReader{r: iotest.OneByteReader(bytes.NewReader(src)), head: make([]byte, 10)}
	all, err := io.ReadAll(h)
	if err != nil || !bytes.Equal(all, src) || h.n != 10 || !bytes.Equal(h.head, src[:10]) {
		t.Errorf("read %q, head %q (%d), err %v", all, h.head, h.n, err)
	}
}
