package imagesource

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// mirror lays the fixtures of testdata/ out under their real paths: served
// by an httptest server, or copied to a local directory.
type mirror struct {
	// files maps a path below the base to a fixture under testdata/. A path
	// ending in "/" is a directory's index page (served over HTTP only).
	files map[string]string
	// dirs are extra empty directories and links symlinks (name → target),
	// both only in a local copy: over HTTP the index pages list them.
	dirs  []string
	links map[string]string
}

var ubuntuMirror = mirror{
	files: map[string]string{
		UbuntuStreamPath:                    "ubuntu/released-download.json",
		"noble/":                            "ubuntu/noble.html",
		"noble/release-20240821/SHA256SUMS": "ubuntu/noble-release-20240821.SHA256SUMS",
		"noble/release-20241004/SHA256SUMS": "ubuntu/noble-release-20241004.SHA256SUMS",
	},
	dirs:  []string{"noble/release-20240423"},
	links: map[string]string{"noble/release": "release-20241004"},
}

// ubuntuDirsMirror has no simplestreams index: only the release
// directories and their SHA256SUMS.
var ubuntuDirsMirror = mirror{
	files: map[string]string{
		"noble/":                            "ubuntu/noble.html",
		"noble/release-20240821/SHA256SUMS": "ubuntu/noble-release-20240821.SHA256SUMS",
		"noble/release-20241004/SHA256SUMS": "ubuntu/noble-release-20241004.SHA256SUMS",
	},
	dirs:  []string{"noble/release-20240423"},
	links: map[string]string{"noble/release": "release-20241004"},
}

var debianMirror = mirror{
	files: map[string]string{
		"bookworm/":                                   "debian/bookworm.html",
		"bookworm/20240717-1811/SHA512SUMS":           "debian/bookworm-20240717-1811.SHA512SUMS",
		"bookworm/20240901-1857/SHA512SUMS":           "debian/bookworm-20240901-1857.SHA512SUMS",
		"bookworm/20241004-1894/SHA512SUMS":           "debian/bookworm-20241004-1894.SHA512SUMS",
		"bookworm-backports/":                         "debian/bookworm-backports.html",
		"bookworm-backports/20241004-1894/SHA512SUMS": "debian/bookworm-backports-20241004-1894.SHA512SUMS",
		"trixie/":                         "debian/trixie.html",
		"trixie/20250820-2212/SHA512SUMS": "debian/trixie-20250820-2212.SHA512SUMS",
	},
	dirs: []string{"bookworm/daily", "trixie/daily"},
	links: map[string]string{
		"bookworm/latest":           "20241004-1894",
		"bookworm-backports/latest": "20241004-1894",
		"trixie/latest":             "20250820-2212",
	},
}

// fixture reads a file of testdata/.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// server serves a mirror below prefix ("/releases/" like
// cloud-images.ubuntu.com, "/images/cloud/" like cloud.debian.org) and
// records the paths asked for.
type server struct {
	*httptest.Server
	base string // URL of the mirror's base, ending in "/"

	mu       sync.Mutex
	requests []string
}

func serve(t testing.TB, m mirror, prefix string) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		s.mu.Unlock()
		rel, ok := strings.CutPrefix(r.URL.Path, prefix)
		name, known := m.files[rel]
		if !ok || !known || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.HasSuffix(rel, "/"):
			w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		case strings.HasSuffix(rel, ".json"):
			w.Header().Set("Content-Type", "application/json")
		default:
			w.Header().Set("Content-Type", "text/plain")
		}
		w.Write(fixture(t, name))
	}))
	t.Cleanup(s.Close)
	s.base = s.URL + prefix
	return s
}

func (s *server) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// local copies a mirror to a new directory and returns it.
func local(t testing.TB, m mirror) string {
	t.Helper()
	root := t.TempDir()
	for rel, name := range m.files {
		if strings.HasSuffix(rel, "/") {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, fixture(t, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range m.dirs {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range m.links {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
