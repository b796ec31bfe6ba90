// Command packer-plugin-cloudimg is a Packer plugin that bakes VM images from
// cloud images: the builder "cloudimg-kvm", the provisioner
// "cloudimg-cloudinit-reset", the post-processor "cloudimg-metadata" and the
// data sources "cloudimg-image" and "cloudimg-repository".
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/builder/kvm"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/datasource/image"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/datasource/repository"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/post-processor/metadata"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/post-processor/oci"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/provisioner/cloudinitreset"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

func main() {
	// Packer reads the plugin's stdout and stderr. If Packer is killed, a
	// write there (a log line) must not kill the plugin with SIGPIPE before
	// it has stopped its builds (below).
	signal.Ignore(syscall.SIGPIPE)
	err := newPluginSet().Run()
	// The connection to Packer has ended. If Packer was killed in the middle
	// of a build, the build is stopped and cleaned up before this exits.
	kvm.StopBuilds(30 * time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

func newPluginSet() *plugin.Set {
	pps := plugin.NewSet()
	pps.RegisterBuilder("kvm", new(kvm.Builder))
	pps.RegisterProvisioner("cloudinit-reset", new(cloudinitreset.Provisioner))
	pps.RegisterPostProcessor("metadata", new(metadata.PostProcessor))
	pps.RegisterPostProcessor("oci", new(oci.PostProcessor))
	pps.RegisterDatasource("image", new(image.Datasource))
	pps.RegisterDatasource("repository", new(repository.Datasource))
	pps.SetVersion(version.PluginVersion)
	return pps
}
