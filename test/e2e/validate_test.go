//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestValidate runs `packer validate` on the templates in
// testdata/validate: the plugin's three components are found and accept a
// good configuration, and bad options are rejected by name. No VM is booted.
func TestValidate(t *testing.T) {
	dir := testDir(t)
	// validate reads no image: a local file stands in for the cloud image.
	fake := filepath.Join(dir, "fake-cloud-image.qcow2")
	writeFile(t, fake, []byte("not a real image\n"), 0o644)
	vars := map[string]string{
		"iso_url":          fake,
		"iso_checksum":     "sha256:" + fileSHA256(t, fake),
		"output_directory": filepath.Join(dir, "output"),
		"repository":       filepath.Join(dir, "repository"),
		"playbook_file":    testdata(t, "validate", "playbook.yml"),
	}
	// Runs after the parallel subtests.
	t.Cleanup(func() {
		if _, err := os.Stat(vars["output_directory"]); err == nil {
			t.Errorf("packer validate created the output directory %s", vars["output_directory"])
		}
	})
	common := []string{"iso_url", "iso_checksum", "output_directory", "repository"}

	cases := []struct {
		name     string
		template string
		vars     []string
		ok       bool
		want     []string // regular expressions the failure output must match
	}{
		{name: "all components", template: "all.pkr.hcl", vars: common, ok: true},
		{name: "ansible plugin", template: "ansible.pkr.hcl", vars: []string{"iso_url", "iso_checksum", "output_directory", "playbook_file"}, ok: true},
		{name: "unknown builder option", template: "bogus-builder.pkr.hcl", vars: common, want: []string{`bogus_option`}},
		{name: "unknown provisioner option", template: "bogus-provisioner.pkr.hcl", vars: common, want: []string{`bogus_option`}},
		{name: "unknown post-processor option", template: "bogus-post-processor.pkr.hcl", vars: common, want: []string{`bogus_option`}},
		{name: "wrong builder option type", template: "wrong-type.pkr.hcl", vars: common[:3], want: []string{`\bcpus\b`}},
		{name: "unknown disk_compression_type", template: "bad-compression-type.pkr.hcl", vars: common[:3], want: []string{`disk_compression_type: "xz" is not one of zstd, zlib`}},
		{name: "arm64 with bios firmware", template: "arm64-bios.pkr.hcl", vars: common[:3], want: []string{`firmware: "bios" does not exist for arch = "arm64"`}},
		{name: "builder without iso_checksum", template: "no-checksum.pkr.hcl", vars: []string{"iso_url", "output_directory"}, want: []string{`iso_checksum`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"validate"}
			for _, v := range tc.vars {
				args = append(args, "-var", v+"="+vars[v])
			}
			args = append(args, testdata(t, "validate", tc.template))
			r := runPacker(t, testDir(t), args...)
			if tc.ok {
				r.mustSucceed(t)
				return
			}
			r.mustFail(t, tc.want...)
		})
	}
}
