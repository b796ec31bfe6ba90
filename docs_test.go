package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/builder/kvm"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/datasource/image"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/datasource/repository"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/post-processor/metadata"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/post-processor/oci"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/provisioner/cloudinitreset"
)

var documentedOption = regexp.MustCompile("(?m)^- `([a-z0-9_]+)` \\(")

// Every option a component accepts (and every output of a data source)
// appears in its rendered documentation, and every option the documentation
// lists exists.
func TestEveryOptionIsDocumented(t *testing.T) {
	for _, c := range []struct {
		page string
		spec hcldec.ObjectSpec
	}{
		{".web-docs/components/builder/kvm/README.md", new(kvm.Builder).ConfigSpec()},
		{".web-docs/components/provisioner/cloudinit-reset/README.md", new(cloudinitreset.Provisioner).ConfigSpec()},
		{".web-docs/components/post-processor/metadata/README.md", new(metadata.PostProcessor).ConfigSpec()},
		{".web-docs/components/post-processor/oci/README.md", new(oci.PostProcessor).ConfigSpec()},
		{".web-docs/components/data-source/image/README.md", dataSourceSpec(new(image.Datasource))},
		{".web-docs/components/data-source/repository/README.md", dataSourceSpec(new(repository.Datasource))},
	} {
		page, err := os.ReadFile(c.page)
		if err != nil {
			t.Fatalf("%v (run make generate)", err)
		}
		documented := map[string]bool{}
		for _, m := range documentedOption.FindAllSubmatch(page, -1) {
			documented[string(m[1])] = true
		}
		var missing, unknown []string
		for key := range c.spec {
			if !documented[key] && !internalOption(key) {
				missing = append(missing, key)
			}
		}
		for key := range documented {
			if _, ok := c.spec[key]; !ok {
				unknown = append(unknown, key)
			}
		}
		sort.Strings(missing)
		sort.Strings(unknown)
		if len(missing) > 0 {
			t.Errorf("%s does not document: %s", c.page, strings.Join(missing, ", "))
		}
		if len(unknown) > 0 {
			t.Errorf("%s documents options that do not exist: %s", c.page, strings.Join(unknown, ", "))
		}
	}
}

// internalOption tells options that are not the user's to set: those Packer
// fills in itself, the WinRM ones (cloudimg-kvm connects only by SSH and
// rejects communicator = "winrm"), and those the SDK marks undocumented.
func internalOption(key string) bool {
	return strings.HasPrefix(key, "packer_") || strings.HasPrefix(key, "winrm_") || sdkUndocumented[key]
}

var sdkUndocumented = map[string]bool{
	"http_interface": true, "ssh_keypair_name": true, "ssh_private_key": true, "ssh_public_key": true,
	"ssh_wait_timeout": true, "temporary_key_pair_name": true,
}

// dataSourceSpec is a data source's options and outputs together: its page
// documents both in the same list form.
func dataSourceSpec(d interface {
	ConfigSpec() hcldec.ObjectSpec
	OutputSpec() hcldec.ObjectSpec
}) hcldec.ObjectSpec {
	spec := hcldec.ObjectSpec{}
	for k, v := range d.ConfigSpec() {
		spec[k] = v
	}
	for k, v := range d.OutputSpec() {
		spec[k] = v
	}
	return spec
}
