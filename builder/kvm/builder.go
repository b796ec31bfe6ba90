package kvm

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// BuilderID is the artifact's BuilderId.
const BuilderID = "packer-cloudimg.kvm"

// Builder is the cloudimg-kvm builder.
type Builder struct {
	config Config
}

// ConfigSpec returns the HCL2 spec of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	warnings, err := b.config.Prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	return generatedDataKeys, warnings, nil
}

// generatedDataKeys are the build variables this builder publishes.
var generatedDataKeys = []string{"SSHPrivateKey", "FactsFile", "SourceImageURL", "SourceImageChecksum"}

// Run runs the build.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	return nil, errors.New("cloudimg-kvm: not implemented yet")
}
