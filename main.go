// Command packer-plugin-cloudimg is a Packer plugin that bakes VM images from
// cloud images: the builder "cloudimg-kvm", the provisioner
// "cloudimg-cloudinit-reset", the post-processor "cloudimg-metadata" and the
// data source "cloudimg-image".
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/builder/kvm"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/datasource/image"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/post-processor/metadata"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/provisioner/cloudinitreset"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

func main() {
	if err := newPluginSet().Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

func newPluginSet() *plugin.Set {
	pps := plugin.NewSet()
	pps.RegisterBuilder("kvm", new(kvm.Builder))
	pps.RegisterProvisioner("cloudinit-reset", new(cloudinitreset.Provisioner))
	pps.RegisterPostProcessor("metadata", new(metadata.PostProcessor))
	pps.RegisterDatasource("image", new(image.Datasource))
	pps.SetVersion(version.PluginVersion)
	return pps
}
