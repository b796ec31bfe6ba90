package imagemeta

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribeSource(t *testing.T) {
	ctx := context.Background()
	idx := fixtureIndex(t)
	e, err := idx.Newest("node", map[string]string{"stage": "dev"})
	if err != nil {
		t.Fatal(err)
	}
	sum := e.Checksums["sha256"]
	abs, _ := filepath.Abs(filepath.Join(fixtureRepo, e.Path))
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(fixtureRepo))))
	defer srv.Close()

	for _, src := range []string{abs, "file://" + filepath.ToSlash(abs), srv.URL + "/repo/" + e.Path} {
		s, err := DescribeSource(ctx, srv.Client(), src, "sha256:"+strings.ToUpper(sum))
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if s.URL != src || s.ImageName != "node" || s.SHA256 != sum || s.Labels["stage"] != "dev" ||
			s.BuildID == "" || !strings.HasSuffix(s.Metadata, "node/20260104/node.qcow2.metadata.json") {
			t.Errorf("%s: %+v", src, s)
		}
		m, _ := ReadMetadata(abs + ".metadata.json")
		if s.BuildID != m.Build.PackerRunUUID {
			t.Errorf("build id %s, want the base's run UUID %s", s.BuildID, m.Build.PackerRunUUID)
		}
	}

	// Not a repository image, or not this file: URL and checksum only.
	other, _ := filepath.Abs(filepath.Join(fixtureRepo, "base/b1/base.qcow2"))
	for name, tc := range map[string]struct{ src, sum, err string }{
		"no metadata":    {other, "sha256:" + sum, ""},
		"unreachable":    {"http://127.0.0.1:1/x.qcow2", "sha256:" + sum, ""},
		"other scheme":   {"s3://bucket/x.qcow2", "sha256:" + sum, ""},
		"other file":     {abs, "sha256:" + sumHex("x"), "it records sha256"},
		"no checksum":    {abs, "none", "is not <algorithm>:<hex>"},
		"sha512 unknown": {abs, "sha512:" + strings.Repeat("a", 128), `records sha512 ""`},
	} {
		s, err := DescribeSource(ctx, nil, tc.src, tc.sum)
		if s == nil || s.URL != tc.src || s.Checksum != tc.sum || s.ImageName != "" || s.BuildID != "" {
			t.Errorf("%s: %+v", name, s)
		}
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", name, err, tc.err)
		}
	}

	dir := t.TempDir()
	img := filepath.Join(dir, "x.qcow2")
	must(t, os.WriteFile(img+".metadata.json", []byte("{not json"), 0o644))
	if _, err := DescribeSource(ctx, nil, img, "sha256:"+sum); err == nil || !strings.Contains(err.Error(), img+".metadata.json") {
		t.Errorf("corrupt metadata: %v", err)
	}
}
