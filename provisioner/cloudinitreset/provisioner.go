//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package cloudinitreset is the cloudimg-cloudinit-reset provisioner.
package cloudinitreset

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the configuration of the reset provisioner.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Print what would change and change nothing.
	DryRun bool `mapstructure:"dry_run"`

	ctx interpolate.Context
}

// Provisioner is the cloudimg-cloudinit-reset provisioner.
type Provisioner struct {
	config Config
}

// ConfigSpec returns the HCL2 spec of Config.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	return config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "cloudimg-cloudinit-reset",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
	}, raws...)
}

// Provision runs the reset.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, generatedData map[string]interface{}) error {
	return errors.New("cloudimg-cloudinit-reset: not implemented yet")
}
