package ociregistry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testRegistry is an in-process OCI registry (go-containerregistry's) on
// 127.0.0.1, with or without the referrers API.
func testRegistry(t *testing.T, referrers bool) Reference {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	ref, err := ParseReference(strings.TrimPrefix(s.URL, "http://") + "/team/nodes")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func open(t *testing.T, ref Reference) *Client {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("REGISTRY_AUTH_FILE", "")
	c, err := Open(ref, Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// disk writes a file of n pseudo-random bytes and returns its path and
// SHA-256.
func disk(t *testing.T, name string, n int, seed byte) (string, string) {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return p, hex.EncodeToString(s[:])
}

func docs(t *testing.T) []Document {
	dir := t.TempDir()
	sbom := filepath.Join(dir, "node.qcow2.cdx.json")
	prov := filepath.Join(dir, "node.qcow2.intoto.json")
	os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX"}`), 0o644)
	os.WriteFile(prov, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), 0o644)
	return []Document{{Path: sbom, ArtifactType: ArtifactTypeCycloneDX}, {Path: prov, ArtifactType: ArtifactTypeInToto}}
}

func image(path, sha, arch string, created time.Time) Image {
	return Image{Path: path, SHA256: sha, Name: "node", Labels: map[string]string{"stage": "prod"}, Arch: arch,
		Format: "qcow2", Firmware: "bios", Created: created, BuildID: "run-1", Revision: "abc", VCSSource: "https://example.org/t.git"}
}

func TestPushBothLayoutsReproducibleAndPullBack(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		for _, layout := range []string{LayoutContainerDisk, LayoutArtifact} {
			t.Run(layout+map[bool]string{true: "+api", false: "+tagschema"}[referrers], func(t *testing.T) {
				ctx := context.Background()
				c := open(t, testRegistry(t, referrers))
				path, sha := disk(t, "node.qcow2", 3<<20+17, 1)
				created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
				p := Push{Image: image(path, sha, "amd64", created), Layout: layout, Documents: docs(t), Tags: []string{"latest"}}
				first, err := c.Push(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if first.SHA256 != sha || len(first.Referrers) != 2 {
					t.Fatalf("pushed %+v", first)
				}
				again, err := c.Push(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if again.Manifest.Digest != first.Manifest.Digest {
					t.Errorf("second push: manifest %s, first %s", again.Manifest.Digest, first.Manifest.Digest)
				}
				if again.BlobsSent != 0 {
					t.Errorf("second push sent %d blobs, want 0", again.BlobsSent)
				}
				// The referrers, as a client lists them.
				var types []string
				if err := c.repo.Referrers(ctx, first.Manifest, "", func(p []ocispec.Descriptor) error {
					for _, d := range p {
						types = append(types, d.ArtifactType)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if strings.Join(types, ",") != ArtifactTypeCycloneDX+","+ArtifactTypeInToto &&
					strings.Join(types, ",") != ArtifactTypeInToto+","+ArtifactTypeCycloneDX {
					t.Errorf("referrers %v", types)
				}
				e, err := c.Describe(ctx, "latest", "amd64")
				if err != nil {
					t.Fatal(err)
				}
				if e.Name != "node" || e.Labels["stage"] != "prod" || e.Layout != layout || !e.Created.Equal(created) || e.BuildID != "run-1" {
					t.Errorf("described %+v", e)
				}
				var out bytes.Buffer
				got, err := c.Pull(ctx, e, &out)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(path)
				if got != sha || !bytes.Equal(out.Bytes(), want) {
					t.Errorf("pulled sha %s (want %s), %d bytes (want %d)", got, sha, out.Len(), len(want))
				}
			})
		}
	}
}

func TestContainerDiskLayerShape(t *testing.T) {
	path, sha := disk(t, "node.qcow2", 1000, 2)
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	src, err := containerDiskLayer(path, "node.qcow2", 1000, created)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := src.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	all, _ := io.ReadAll(rc)
	if int64(len(all)) != src.Size() || len(all)%512 != 0 {
		t.Fatalf("layer is %d bytes, Size says %d", len(all), src.Size())
	}
	tr := tar.NewReader(bytes.NewReader(all))
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 107 || h.Gid != 107 || !h.ModTime.Equal(created) || h.Mode&0o400 == 0 {
			t.Errorf("%s: uid %d gid %d mode %o mtime %s", h.Name, h.Uid, h.Gid, h.Mode, h.ModTime)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			s := sha256.Sum256(b)
			if hex.EncodeToString(s[:]) != sha {
				t.Errorf("%s: content differs", h.Name)
			}
		}
	}
	if strings.Join(names, ",") != "disk/,disk/node.qcow2" {
		t.Errorf("entries %v", names)
	}
	d, fileSHA, err := hashSource(src)
	if err != nil {
		t.Fatal(err)
	}
	whole := sha256.Sum256(all)
	if d.Encoded() != hex.EncodeToString(whole[:]) || fileSHA != sha {
		t.Errorf("hashSource: %s %s", d, fileSHA)
	}
}

func TestMultiArchIndexAndNewest(t *testing.T) {
	ctx := context.Background()
	c := open(t, testRegistry(t, false))
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	a, shaA := disk(t, "node-amd64.qcow2", 5000, 3)
	b, shaB := disk(t, "node-arm64.qcow2", 6000, 4)
	pa, err := c.Push(ctx, Push{Image: image(a, shaA, "amd64", created), Layout: LayoutContainerDisk, Tags: []string{"v1"}})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := c.Push(ctx, Push{Image: image(b, shaB, "arm64", created.Add(time.Minute)), Layout: LayoutContainerDisk, Tags: []string{"v1"}})
	if err != nil {
		t.Fatal(err)
	}
	idx, ok := pb.Index["v1"]
	if !ok || idx.Annotations["amd64"] != pa.Manifest.Digest.String() || idx.Annotations["arm64"] != pb.Manifest.Digest.String() {
		t.Fatalf("v1 index %+v", pb.Index)
	}
	var index ocispec.Index
	d, err := c.repo.Resolve(ctx, "v1")
	if err != nil || d.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("v1 resolves to %+v, %v", d, err)
	}
	if err := c.fetchJSON(ctx, d, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[0].Platform.Architecture != "amd64" || index.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("index manifests %+v", index.Manifests)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		e, err := c.Describe(ctx, "v1", arch)
		if err != nil || e.Arch != arch {
			t.Errorf("Describe v1 %s: %+v %v", arch, e, err)
		}
		n, err := c.Newest(ctx, "node", map[string]string{"stage": "prod"}, arch)
		if err != nil || n.Arch != arch || len(n.IndexTags) != 1 {
			t.Errorf("Newest %s: %+v %v", arch, n, err)
		}
	}
	// Another build of amd64 moves the tag to its own manifest.
	c2, sha2 := disk(t, "node-amd64.qcow2", 5000, 9)
	im := image(c2, sha2, "amd64", created.Add(time.Hour))
	im.BuildID = "run-2"
	p2, err := c.Push(ctx, Push{Image: im, Layout: LayoutContainerDisk, Tags: []string{"v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Index) != 0 {
		t.Errorf("a new build's tag became an index: %+v", p2.Index)
	}
	if _, err := c.Newest(ctx, "node", map[string]string{"stage": "other"}, "amd64"); !errors.Is(err, ErrNoImage) || !strings.Contains(err.Error(), "node (amd64) {stage=prod}") {
		t.Errorf("no match: %v", err)
	}
}

func TestKeepLast(t *testing.T) {
	ctx := context.Background()
	c := open(t, testRegistry(t, false))
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var pushed []*Pushed
	for i := range 4 {
		p, sha := disk(t, "node.qcow2", 2000, byte(10+i))
		im := image(p, sha, "amd64", created.Add(time.Duration(i)*time.Hour))
		im.BuildID = "run"
		tags := []string{"latest"}
		if i == 0 {
			tags = append(tags, "pinned")
		}
		r, err := c.Push(ctx, Push{Image: im, Layout: LayoutArtifact, Documents: docs(t), Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		pushed = append(pushed, r)
	}
	removed, kept, err := c.KeepLast(ctx, 2, "node", "amd64", map[string]string{"stage": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Entry.Manifest.Digest != pushed[1].Manifest.Digest || removed[0].Referrers != 2 {
		t.Errorf("removed %+v", removed)
	}
	if len(kept) != 1 || kept[0].Entry.Manifest.Digest != pushed[0].Manifest.Digest || !strings.Contains(kept[0].Why, "pinned") {
		t.Errorf("kept %+v", kept)
	}
	if ok, _ := c.repo.Manifests().Exists(ctx, pushed[1].Manifest); ok {
		t.Error("the removed manifest is still there")
	}
	all, err := c.List(ctx)
	if err != nil || len(all) != 3 {
		t.Errorf("after keep_last: %d images, %v", len(all), err)
	}
}

func TestKeepLastDeletionRefused(t *testing.T) {
	ctx := context.Background()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "UNSUPPORTED", "message": "The operation is unsupported."}}})
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer s.Close()
	ref, _ := ParseReference(strings.TrimPrefix(s.URL, "http://") + "/team/nodes")
	c := open(t, ref)
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for i := range 2 {
		p, sha := disk(t, "node.qcow2", 2000, byte(20+i))
		if _, err := c.Push(ctx, Push{Image: image(p, sha, "amd64", created.Add(time.Duration(i)*time.Hour)), Layout: LayoutArtifact, Documents: docs(t)}); err != nil {
			t.Fatal(err)
		}
	}
	removed, _, err := c.KeepLast(ctx, 1, "node", "amd64", map[string]string{"stage": "prod"})
	if !errors.Is(err, ErrDeleteRefused) || len(removed) != 0 || !strings.Contains(err.Error(), "nothing was removed") || !strings.Contains(err.Error(), ref.Registry) {
		t.Fatalf("removed %v, err %v", removed, err)
	}
	if all, _ := c.List(ctx); len(all) != 2 {
		t.Errorf("%d images left, want 2", len(all))
	}
}

func TestStalledRegistryFails(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(release)
	ref, _ := ParseReference(strings.TrimPrefix(s.URL, "http://") + "/team/nodes")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	c, err := Open(ref, Options{PlainHTTP: true, StallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p, sha := disk(t, "node.qcow2", 1000, 5)
	_, err = c.Push(context.Background(), Push{Image: image(p, sha, "amd64", time.Now()), Layout: LayoutArtifact})
	if !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "registry "+ref.Registry) || !strings.Contains(err.Error(), "no tag was changed") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "oci://registry.example.org/team/nodes", want: "registry.example.org/team/nodes"},
		{in: "127.0.0.1:5000/nodes:v1", want: "127.0.0.1:5000/nodes:v1"},
		{in: "oci://localhost/a/b@sha256:" + strings.Repeat("a", 64), want: "localhost/a/b@sha256:" + strings.Repeat("a", 64)},
		{in: "ubuntu", err: "name the registry host"},
		{in: "team/nodes", err: "name the registry host"},
		{in: "https://registry.example.org/x", err: "only oci://"},
		{in: "oci://", err: "empty"},
		{in: "registry.example.org/Team", err: "invalid"},
	} {
		r, err := ParseReference(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || r.String() != tc.want):
			t.Errorf("%q: %v %v, want %s", tc.in, r, err, tc.want)
		}
	}
}

func TestBuildTag(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if got := BuildTag("debian-12/node", "amd64", at, "0123456789abcdef"); got != "debian-12-node-amd64-20261206T100000Z-0123456789ab" {
		t.Errorf("BuildTag = %s", got)
	}
	long := BuildTag(strings.Repeat("n", 200), "arm64", at, "0123456789abcdef")
	if len(long) != 128 || !ValidTag(long) {
		t.Errorf("long BuildTag %d chars: %s", len(long), long)
	}
}
