package imagemeta

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testdata/repository is a repository as the post-processor leaves it:
// "node" images labelled stage=prod (two finished in the same second), one
// stage=dev, one with an extra label, and a "base" image without labels or
// metadata document.
const fixtureRepo = "testdata/repository"

func fixtureIndex(t *testing.T) *Index {
	t.Helper()
	idx, err := Location{Dir: fixtureRepo}.ReadIndex(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestNewest(t *testing.T) {
	idx := fixtureIndex(t)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"node", nil, "node/20260105/node.qcow2"},
		{"node", map[string]string{"stage": "prod"}, "node/20260105/node.qcow2"}, // a label superset matches
		{"node", map[string]string{"stage": "prod", "kubernetes": "1.31"}, "node/20260105/node.qcow2"},
		{"node", map[string]string{"stage": "dev"}, "node/20260104/node.qcow2"},
		{"base", map[string]string{}, "base/b1/base.qcow2"},
	} {
		got, err := idx.Newest(tc.name, tc.labels)
		if err != nil {
			t.Errorf("Newest(%s, %v): %v", tc.name, tc.labels, err)
			continue
		}
		if got.Path != tc.want {
			t.Errorf("Newest(%s, %v) = %s, want %s", tc.name, tc.labels, got.Path, tc.want)
		}
	}
}

// Images that finished in the same second: the greater path is the newer,
// whatever the order of the index, and the index's latest map agrees.
func TestNewestTie(t *testing.T) {
	at := time.Date(2026, 1, 3, 10, 0, 0, 0, time.UTC)
	a := IndexEntry{Name: "n", Path: "n/a.qcow2", Created: at}
	b := IndexEntry{Name: "n", Path: "n/b.qcow2", Created: at}
	old := IndexEntry{Name: "n", Path: "n/z.qcow2", Created: at.Add(-time.Second)}
	for _, images := range [][]IndexEntry{{a, b, old}, {old, b, a}, {b, old, a}} {
		idx := &Index{Images: images}
		got, err := idx.Newest("n", nil)
		if err != nil || got.Path != "n/b.qcow2" {
			t.Errorf("Newest over %v = %v, %v; want n/b.qcow2", images, got.Path, err)
		}
		idx.normalize()
		if idx.Latest["n"] != "n/b.qcow2" {
			t.Errorf("latest = %v, want n/b.qcow2", idx.Latest)
		}
	}
}

func TestNewestNoMatch(t *testing.T) {
	idx := fixtureIndex(t)
	_, err := idx.Newest("node", map[string]string{"stage": "qa"})
	var nm *NoMatchError
	if !errors.As(err, &nm) {
		t.Fatalf("error %v, want a *NoMatchError", err)
	}
	want := `no image named "node" with labels {stage=qa}; the repository holds: "base" with labels {}; "node" with labels {kubernetes=1.31, stage=prod} or {stage=dev} or {stage=prod}`
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant\n%s", err, want)
	}
	_, err = (&Index{}).Newest("x", nil)
	if err == nil || err.Error() != `no image named "x": the repository holds no images` {
		t.Errorf("empty index: %v", err)
	}
}

func TestParseLocation(t *testing.T) {
	abs, _ := filepath.Abs("some/repo")
	for in, want := range map[string]string{
		"some/repo":                             abs,
		"some/repo/index.json":                  abs,
		"file://" + abs:                         abs,
		"https://images.example/repo":           "https://images.example/repo/",
		"https://images.example/repo/":          "https://images.example/repo/",
		"http://images.example/repo/index.json": "http://images.example/repo/",
		"https://u:secret@images.example/r?x=1": "https://u:xxxxx@images.example/r/",
	} {
		l, err := ParseLocation(in)
		if err != nil || l.String() != want {
			t.Errorf("ParseLocation(%q) = %q, %v; want %q", in, l.String(), err, want)
		}
	}
	for _, bad := range []string{"", "ftp://images.example/repo", "https:///repo"} {
		if _, err := ParseLocation(bad); err == nil {
			t.Errorf("ParseLocation(%q): no error", bad)
		}
	}
	if l, _ := ParseLocation("https://images.example/repo/myindex.json"); l.String() != "https://images.example/repo/myindex.json/" {
		t.Errorf("a file that is not index.json: %s", l)
	}
	if l, _ := ParseLocation("https://u:secret@images.example/r/"); l.Show(IndexFile) != "https://u:xxxxx@images.example/r/index.json" || l.Resolve(IndexFile) != "https://u:secret@images.example/r/index.json" {
		t.Errorf("Show %s, Resolve %s", l.Show(IndexFile), l.Resolve(IndexFile))
	}
	l, _ := ParseLocation("https://images.example/repo/index.json")
	if got := l.Resolve("node/2026 01/node.qcow2"); got != "https://images.example/repo/node/2026%2001/node.qcow2" {
		t.Errorf("Resolve = %s", got)
	}
}

func TestLocationErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, err := Location{Dir: dir}.ReadIndex(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, IndexFile)) || !errors.Is(err, ErrNotFound) {
		t.Errorf("missing index: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"schema_version": 1, "images": [`), 0o644))
	_, err = Location{Dir: dir}.ReadIndex(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, IndexFile)+" is not a valid repository index") {
		t.Errorf("corrupt index: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"schema_version": 1, "images": [{"name": "x"}]}`), 0o644))
	_, err = Location{Dir: dir}.ReadIndex(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "has no name or path") {
		t.Errorf("index without a path: %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken/index.json" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	for p, want := range map[string]string{
		"/missing/": srv.URL + "/missing/index.json: 404 Not Found: not found",
		"/broken/":  srv.URL + "/broken/index.json: 500 Internal Server Error",
	} {
		l, _ := ParseLocation(srv.URL + p)
		if _, err := l.ReadIndex(ctx, srv.Client()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", p, err, want)
		}
	}
}

// Over HTTP the index and the metadata are read from the repository's URL
// and image paths resolve against it.
func TestLocationHTTP(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(fixtureRepo))))
	defer srv.Close()
	ctx := context.Background()
	l, err := ParseLocation(srv.URL + "/repo/index.json")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.ReadIndex(ctx, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	e, err := idx.Newest("node", map[string]string{"stage": "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Resolve(e.Path), srv.URL+"/repo/node/20260104/node.qcow2"; got != want {
		t.Errorf("image URL %s, want %s", got, want)
	}
	m, err := l.ReadEntryMetadata(ctx, srv.Client(), e)
	if err != nil || m == nil {
		t.Fatalf("metadata: %v, %v", m, err)
	}
	if m.Image.Checksums["sha256"] != e.Checksums["sha256"] || m.Build.PackerRunUUID == "" {
		t.Errorf("metadata of %s: %+v", e.Path, m)
	}
	base, _ := idx.Newest("base", nil)
	if m, err := l.ReadEntryMetadata(ctx, srv.Client(), base); m != nil || err != nil {
		t.Errorf("an image without a metadata document: %v, %v; want nil, nil", m, err)
	}
}

// The metadata document is the listed sidecar when there is one.
func TestMetadataPath(t *testing.T) {
	e := IndexEntry{Path: "a/x.qcow2"}
	if got := MetadataPath(e); got != "a/x.qcow2.metadata.json" {
		t.Errorf("default: %s", got)
	}
	e.Sidecars = []Sidecar{{Kind: SidecarCycloneDX, Path: "a/x.cdx.json"}, {Kind: SidecarMetadata, Path: "meta/x.json"}}
	if got := MetadataPath(e); got != "meta/x.json" {
		t.Errorf("sidecar: %s", got)
	}
	e.Sidecars = []Sidecar{{Kind: SidecarMetadata, Path: "../x.json"}}
	if _, err := (Location{Dir: fixtureRepo}).ReadEntryMetadata(context.Background(), nil, e); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Errorf("metadata outside the repository: %v", err)
	}
}
