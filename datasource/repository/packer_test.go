package repository

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

// TestPacker runs the real Packer (tools/bin/packer) with the plugin built
// from this checkout on testdata/find.pkr.hcl, against a repository made
// by makeRepo and served over HTTP by the test: validate (outputs unknown,
// fed to a cloudimg-kvm source), a build of a null source that prints every
// output, and a build whose labels match nothing. No VM, a few seconds.
func TestPacker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and runs Packer")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	packer := filepath.Join(root, "tools", "bin", "packer")
	if _, err := os.Stat(packer); err != nil {
		t.Fatalf("%s is missing: run make tools (%v)", packer, err)
	}
	work := t.TempDir()
	plugin := filepath.Join(work, "packer-plugin-cloudimg")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PACKER_") || strings.HasPrefix(k, "PKR_VAR_") || k == "CHECKPOINT_DISABLE" {
			continue
		}
		env = append(env, kv)
	}
	repo := makeRepo(t)
	srv := httptest.NewServer(http.StripPrefix("/repo/", http.FileServer(http.Dir(repo))))
	defer srv.Close()
	env = append(env,
		"PACKER_PLUGIN_PATH="+filepath.Join(work, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(work, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(work, "cache"),
		"CHECKPOINT_DISABLE=1",
		"PKR_VAR_repository="+repo,
		"PKR_VAR_repository_url="+srv.URL+"/repo/index.json",
	)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(packer, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := run("plugins", "install", "--path", plugin, "github.com/packer-cloudimg/cloudimg"); err != nil {
		t.Fatalf("plugins install: %v\n%s", err, out)
	}
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
