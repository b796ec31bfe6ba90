package image

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/packertest"
)

// TestPacker runs the real Packer (tools/bin/packer) with the plugin built
// from this checkout on testdata/resolve.pkr.hcl: validate, a failing
// validate, a build of a null source that prints every output, and a build
// whose data source fails. The fixture mirror is local: no network, no VM,
// a few seconds.
func TestPacker(t *testing.T) {
	// The template's relative base_url is below the package directory,
	// where Packer runs.
	run := packertest.New(t, "../..").Run
	const template = "testdata/resolve.pkr.hcl"

	if out, err := run("validate", template); err != nil || !strings.Contains(out, "The configuration is valid.") {
		t.Errorf("validate: %v\n%s", err, out)
	}
	out, err := run("validate", "-var", "debian_variant=server", template)
	if err == nil || !strings.Contains(out, `variant: "server" is not one of the debian variants: "genericcloud", "generic"`) {
		t.Errorf("validate with a bad variant: %v\n%s", err, out)
	}

	out, err = run("build", "-color=false", template)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir, err := filepath.Abs("testdata/mirror")
	if err != nil {
		t.Fatal(err)
	}
	mirror := "file://" + filepath.ToSlash(dir)
	for _, want := range []string{
		"debian.url=" + mirror + "/debian/bookworm/20241004-1894/debian-12-genericcloud-amd64-20241004-1894.qcow2",
		"debian.checksum=sha512:b5fd4dcf759b1824cc803cdfea74df785f7241f01b4ce5b11e9d57e69f432347b4f0cdba910b8335240907e9375da2b33fe32ecf52895940a019e62aa6b3ddf8",
		"debian.serial=20241004-1894",
		"debian.name=debian-12-genericcloud-amd64-20241004-1894.qcow2",
		"debian.checksum_url=" + mirror + "/debian/bookworm/20241004-1894/SHA512SUMS",
		"ubuntu.url=" + mirror + "/ubuntu/noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img",
		"ubuntu.checksum=sha256:ac7b643065bda0d946845c20813cf3686d1aa4b2c4aff55e283b23aba297213f",
		"ubuntu.serial=20241004",
		"ubuntu.name=ubuntu-24.04-server-cloudimg-amd64.img",
		"ubuntu.checksum_url=" + mirror + "/ubuntu/noble/release-20241004/SHA256SUMS",
		"offline.url=https://cloud-images.ubuntu.com/releases/noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img",
		"offline.checksum=file:https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS",
		"offline.serial=20241004",
	} {
		if !strings.Contains(out, "null.resolve: "+want+"\n") {
			t.Errorf("build output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("build output:\n%s", out)
	}

	out, err = run("build", "-color=false", "-var", "debian_release=forky", template)
	if err == nil || !strings.Contains(out, `debian forky amd64 genericcloud, serial current, from `+mirror+`/debian: release "forky" not found`) {
		t.Errorf("build of a release the mirror lacks: %v\n%s", err, out)
	}
}
