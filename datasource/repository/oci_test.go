package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
)

// An oci:// repository: the newest image of the name, labels and arch, by
// its manifest's digest, with the disk's sha256 as checksum.
func TestFindOCI(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	ref, _ := ociregistry.ParseReference(host + "/team/nodes")
	client, err := ociregistry.Open(ref, ociregistry.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	pushed := map[string]*ociregistry.Pushed{}
	for i, v := range []struct{ key, arch, stage string }{
		{"old", "amd64", "prod"}, {"new", "amd64", "prod"}, {"arm", "arm64", "prod"}, {"dev", "amd64", "dev"},
	} {
		p := filepath.Join(t.TempDir(), "node.qcow2")
		os.WriteFile(p, []byte(v.key), 0o644)
		sum := sha256.Sum256([]byte(v.key))
		r, err := client.Push(context.Background(), ociregistry.Push{Layout: ociregistry.LayoutArtifact, Image: ociregistry.Image{
			Path: p, SHA256: hex.EncodeToString(sum[:]), Name: "node", Arch: v.arch, Format: "qcow2", Firmware: "uefi",
			Labels: map[string]string{"stage": v.stage}, Created: at.Add(time.Duration(i) * time.Minute), BuildID: "run-" + v.key,
		}})
		if err != nil {
			t.Fatal(err)
		}
		pushed[v.key] = r
	}
	c := &Config{Repository: "oci://" + host + "/team/nodes", ImageName: "node", Labels: map[string]string{"stage": "prod"},
		Arch: "amd64", Config: ociconfig.Config{PlainHTTP: true}}
	out, err := findOCI(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := pushed["new"]
	if out.URL != want.Ref.URL() || out.Checksum != "sha256:"+want.SHA256 || out.BuildID != "run-new" || out.Firmware != "uefi" ||
		out.Labels["stage"] != "prod" || out.FinishedAt != "2026-12-06T10:01:00Z" || out.Path != "node.qcow2" {
		t.Errorf("found %+v, want the newer amd64 prod image %s", out, want.Ref.URL())
	}
	c.Arch = "riscv64"
	if _, err := findOCI(context.Background(), c, nil); err == nil || !strings.Contains(err.Error(), "no matching image node (riscv64)") || !strings.Contains(err.Error(), host) {
		t.Errorf("no match: %v", err)
	}
}
