package repository

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/packertest"
)

// TestPacker runs the real Packer (tools/bin/packer) with the plugin built
// from this checkout on testdata/find.pkr.hcl, against a repository made
// by makeRepo and served over HTTP by the test: validate (outputs unknown,
// fed to a cloudimg-kvm source), a build of a null source that prints every
// output, and a build whose labels match nothing. No VM, a few seconds.
func TestPacker(t *testing.T) {
	repo := makeRepo(t)
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(repo))))
	defer srv.Close()
	pk := packertest.New(t, "../..", "PKR_VAR_repository="+repo, "PKR_VAR_repository_url="+srv.URL+"/repo/index.json")
	run, work := pk.Run, pk.Work
	const template = "testdata/find.pkr.hcl"

	if out, err := run("validate", template); err != nil || !strings.Contains(out, "The configuration is valid.") {
		t.Errorf("validate: %v\n%s", err, out)
	}
	// Before the base build has run there is no repository yet.
	if out, err := run("validate", "-var", "repository="+filepath.Join(work, "not-built-yet"), template); err != nil || !strings.Contains(out, "The configuration is valid.") {
		t.Errorf("validate without the repository: %v\n%s", err, out)
	}

	out, err := run("build", "-color=false", "-only=null.find", template)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	img := filepath.Join(repo, "b2", "base.qcow2")
	sums, _, err := imagemeta.HashFileContext(context.Background(), img, []string{"sha256"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"local.url=" + img,
		"local.checksum=sha256:" + sums["sha256"],
		"local.path=b2/base.qcow2",
		"local.labels.os=debian-12",
		"local.finished_at=2026-11-26T10:00:00Z",
		"local.build_id=run-b",
		"local.firmware=bios",
		"local.metadata_url=" + img + ".metadata.json",
		"local.source_url=https://cloud.debian.org/debian-12.qcow2",
		"local.source_checksum=sha512:abc",
		"local.os=debian 12 Debian GNU/Linux 12",
		"remote.url=" + srv.URL + "/repo/b3/base.qcow2",
		"remote.metadata_url=" + srv.URL + "/repo/b3/base.qcow2.metadata.json",
		"remote.build_id=run-c",
	} {
		if !strings.Contains(out, "null.find: "+want+"\n") {
			t.Errorf("build output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("build output:\n%s", out)
	}

	out, err = run("build", "-color=false", "-only=null.find", "-var", "os=debian-14", template)
	if err == nil || !strings.Contains(out, `no image named "base" with labels {os=debian-14}; the repository holds: "base" with labels {os=debian-12} or {os=debian-13}; "legacy" with labels {os=debian-12}`) {
		t.Errorf("build with labels nothing has: %v\n%s", err, out)
	}
}
