package repository

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/unknown"
)

func TestConfigure(t *testing.T) {
	cases := []struct {
		name string
		raw  map[string]interface{}
		want []string // substrings of the error; none: valid
	}{
		{"directory", map[string]interface{}{"repository": "repo", "image_name": "base"}, nil},
		{"everything", map[string]interface{}{"repository": "https://images.example/repo/index.json", "image_name": "base",
			"labels": map[string]string{"os": "debian-12"}, "timeout": "10s"}, nil},
		{"missing both", map[string]interface{}{}, []string{"repository: required", "image_name: required"}},
		{"scheme", map[string]interface{}{"repository": "s3://bucket/repo", "image_name": "base"}, []string{`repository: repository location "s3://bucket/repo": scheme "s3" is not supported`}},
		{"timeout", map[string]interface{}{"repository": "repo", "image_name": "base", "timeout": "-1s"}, []string{"timeout: must be positive"}},
		{"empty label", map[string]interface{}{"repository": "repo", "image_name": "base", "labels": map[string]string{" ": "x"}}, []string{"labels: empty label name"}},
		{"unknown option", map[string]interface{}{"repository": "repo", "image_name": "base", "iso_url": "x"}, []string{"iso_url"}},
		{"oci", map[string]interface{}{"repository": "oci://registry.example.org/team/nodes", "image_name": "base", "arch": "arm64", "plain_http": true}, nil},
		{"oci tag", map[string]interface{}{"repository": "oci://registry.example.org/team/nodes:v1", "image_name": "base"}, []string{"names a tag or digest"}},
		{"oci no host", map[string]interface{}{"repository": "oci://nodes", "image_name": "base"}, []string{"repository:", "name the registry host"}},
		{"arch", map[string]interface{}{"repository": "repo", "image_name": "base", "arch": "riscv64"}, []string{`arch: "riscv64" is not amd64 or arm64`}},
		{"password alone", map[string]interface{}{"repository": "oci://r.example/x", "image_name": "base", "password": "s3cret"}, []string{"password: set username too"}},
		// packer validate passes "<unknown>" for another data source's output.
		{"unknown values", map[string]interface{}{"repository": unknown.Value, "image_name": unknown.Value}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Datasource
			err := d.Configure(c.raw)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// makeRepo writes a repository the way the post-processor does: images,
// their metadata documents and index.json/SHA256SUMS through imagemeta.
// "base" has two builds with os=debian-12 (the second newer) and one
// with os=debian-13; "legacy" has no metadata document.
func makeRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repo := &imagemeta.Repo{Dir: dir}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i, b := range []struct {
		path, name, os string
		at             time.Time
		meta           bool
	}{
		{"b1/base.qcow2", "base", "12", t0, true},
		{"b2/base.qcow2", "base", "12", t0.Add(time.Hour), true},
		{"b3/base.qcow2", "base", "13", t0.Add(2 * time.Hour), true},
		{"l1/legacy.raw", "legacy", "12", t0, false},
	} {
		p := filepath.Join(dir, b.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("image "+b.path), 0o644); err != nil {
			t.Fatal(err)
		}
		sums, size, err := imagemeta.HashFileContext(context.Background(), p, []string{"sha256"})
		if err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"os": "debian-" + b.os}
		if b.meta {
			guest, _ := json.Marshal(map[string]any{"os_release": map[string]string{
				"ID": "debian", "VERSION_ID": b.os, "PRETTY_NAME": "Debian GNU/Linux " + b.os}})
			m := &imagemeta.Metadata{
				Image:  imagemeta.Image{Name: b.name, Path: filepath.Base(p), Format: "raw", SizeBytes: size, Checksums: sums},
				Source: &imagemeta.Source{URL: "https://cloud.debian.org/debian-" + b.os + ".qcow2", Checksum: "sha512:abc"},
				Build:  imagemeta.Build{PackerRunUUID: "run-" + string(rune('a'+i)), FinishedAt: b.at},
				Labels: labels, Guest: guest,
			}
			if err := imagemeta.WriteMetadata(p+".metadata.json", m); err != nil {
				t.Fatal(err)
			}
		}
		e := imagemeta.IndexEntry{Name: b.name, Labels: labels, Size: size, Created: b.at, Firmware: "bios"}
		if err := repo.Add(e, sums["sha256"], b.path); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExecute(t *testing.T) {
	dir := makeRepo(t)
	d := Datasource{}
	if err := d.Configure(map[string]interface{}{"repository": dir, "image_name": "base", "labels": map[string]string{"os": "debian-12"}}); err != nil {
		t.Fatal(err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "b2", "base.qcow2")
	sums, _, _ := imagemeta.HashFileContext(context.Background(), img, []string{"sha256"})
	want := map[string]string{
		"url": img, "checksum": "sha256:" + sums["sha256"], "path": "b2/base.qcow2",
		"finished_at": "2026-11-26T10:00:00Z", "build_id": "run-b", "firmware": "bios",
		"metadata_url": img + ".metadata.json",
		"source_url":   "https://cloud.debian.org/debian-12.qcow2", "source_checksum": "sha512:abc",
		"os_id": "debian", "os_version_id": "12", "os_name": "Debian GNU/Linux 12",
	}
	for k, w := range want {
		if got := v.GetAttr(k); got.Type() != cty.String || got.AsString() != w {
			t.Errorf("%s = %#v, want %q", k, got, w)
		}
	}
	if l := v.GetAttr("labels"); !l.Type().IsMapType() || l.Index(cty.StringVal("os")).AsString() != "debian-12" {
		t.Errorf("labels = %#v", l)
	}
}

func TestFind(t *testing.T) {
	dir := makeRepo(t)
	ctx := context.Background()
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(dir))))
	defer srv.Close()

	out, err := find(ctx, srv.Client(), srv.URL+"/repo", "base", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.URL != srv.URL+"/repo/b3/base.qcow2" || out.MetadataURL != srv.URL+"/repo/b3/base.qcow2.metadata.json" || out.OSVersionID != "13" || out.BuildID != "run-c" {
		t.Errorf("over http: %+v", out)
	}
	out, err = find(ctx, nil, "file://"+dir, "legacy", nil)
	if err != nil || out.URL != filepath.Join(dir, "l1/legacy.raw") || out.BuildID != "" || out.MetadataURL != "" || out.OSID != "" {
		t.Errorf("without metadata: %+v, %v", out, err)
	}

	for name, tc := range map[string]struct {
		loc, image string
		labels     map[string]string
		err        string
	}{
		"no match": {dir, "base", map[string]string{"os": "debian-14"},
			filepath.Join(dir, "index.json") + `: no image named "base" with labels {os=debian-14}; the repository holds: "base" with labels {os=debian-12} or {os=debian-13}; "legacy" with labels {os=debian-12}`},
		"missing index": {filepath.Join(dir, "b1"), "base", nil, filepath.Join(dir, "b1", "index.json") + ": not found"},
		"404":           {srv.URL + "/nope/", "base", nil, srv.URL + "/nope/index.json: 404 Not Found"},
	} {
		if _, err := find(ctx, srv.Client(), tc.loc, tc.image, tc.labels); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", name, err, tc.err)
		}
	}

	// An index written by hand may have no labels: the output is an empty
	// map, which lookup() accepts, not null.
	hand := t.TempDir()
	if err := os.WriteFile(filepath.Join(hand, "index.json"), []byte(`{"schema_version": 1, "images": [{"name": "x", "path": "x.img", "checksums": {"sha256": "00"}, "created": "2026-01-01T00:00:00Z"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := find(ctx, nil, hand, "x", nil); err != nil || out.Labels == nil || len(out.Labels) != 0 {
		t.Errorf("an image without labels: %#v, %v", out.Labels, err)
	}

	// A corrupt metadata document, and one that describes another file.
	meta := filepath.Join(dir, "b3", "base.qcow2.metadata.json")
	if err := os.WriteFile(meta, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := find(ctx, nil, dir, "base", nil); err == nil || !strings.Contains(err.Error(), meta) {
		t.Errorf("corrupt metadata: %v", err)
	}
	b2, _ := os.ReadFile(filepath.Join(dir, "b2", "base.qcow2.metadata.json"))
	if err := os.WriteFile(meta, b2, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := find(ctx, nil, dir, "base", nil); err == nil || !strings.Contains(err.Error(), "the repository is inconsistent") {
		t.Errorf("metadata of another image: %v", err)
	}
}
