//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package metadata is the cloudimg-metadata post-processor.
package metadata

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the configuration of the metadata post-processor.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Image repository directory that receives index.json and SHA256SUMS.
	Repository string `mapstructure:"repository"`
	// Labels recorded with the image.
	Labels map[string]string `mapstructure:"labels"`

	ctx interpolate.Context
}

// PostProcessor is the cloudimg-metadata post-processor.
type PostProcessor struct {
	config Config
}

// ConfigSpec returns the HCL2 spec of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure validates the configuration.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	return config.Decode(&p.config, &config.DecodeOpts{
		PluginType:         "cloudimg-metadata",
		Interpolate:        true,
		InterpolateContext: &p.config.ctx,
	}, raws...)
}

// PostProcess writes the metadata.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, a packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	return nil, false, false, errors.New("cloudimg-metadata: not implemented yet")
}
