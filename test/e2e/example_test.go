//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExampleValidates: the documented example (example/, what `make demo`
// builds) passes `packer validate` with both stages, as a user would run it
// with the image URL and checksum of their choice, and as it comes, with the
// image resolved by the cloudimg-image data source; and the chained example
// (example/chained: a base, then two stages from the repository), before any
// repository exists.
func TestExampleValidates(t *testing.T) {
	dir := testDir(t)
	fake := filepath.Join(dir, "cloud-image.img")
	writeFile(t, fake, []byte("not a real image\n"), 0o644)
	// A copy of the template and its playbook: Packer's logs go to the
	// directory it runs in.
	src := filepath.Join(suite.root, "example")
	example := filepath.Join(dir, "example")
	if err := os.CopyFS(filepath.Join(example, "ansible-provisioner"), os.DirFS(filepath.Join(src, "ansible-provisioner"))); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(src, "ubuntu-2404-kubernetes.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(example, "ubuntu-2404-kubernetes.pkr.hcl"), tmpl, 0o644)
	r := runPacker(t, example, "validate",
		"-var", "iso_url="+fake,
		"-var", "iso_checksum=sha256:"+fileSHA256(t, fake),
		"-var", "build_production=true",
		"-var", "repository="+filepath.Join(dir, "repository"),
		".")
	r.mustSucceed(t)

	// As it is first run, without iso_url: the cloudimg-image data source
	// provides the image, and validate does not run it (its outputs are
	// unknown then), so this must pass offline too.
	r = runPacker(t, example, "validate", "-var", "repository="+filepath.Join(dir, "repository"), ".")
	r.mustSucceed(t)

	chained := filepath.Join(dir, "chained")
	if err := os.CopyFS(chained, os.DirFS(filepath.Join(src, "chained"))); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"base"},
		{"-var", "iso_url=" + fake, "-var", "iso_checksum=sha256:" + fileSHA256(t, fake), "base"},
		{"stages"}, // the cloudimg-repository outputs are unknown: no repository is read
	} {
		r = runPacker(t, chained, append([]string{"validate"}, args...)...)
		r.mustSucceed(t)
	}
	// With the arm64 source next to the amd64 one (qemu-system-aarch64 and
	// AAVMF must be there: validation checks for them).
	r = runPacker(t, example, "validate", "-var", "repository="+filepath.Join(dir, "repository"),
		"-var", `arches=["amd64","arm64"]`, "-var", "build_production=true", ".")
	r.mustSucceed(t)
}
