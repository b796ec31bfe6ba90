package kvm

import (
	"fmt"
	"os"
	"path/filepath"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
)

// Artifact is the built image.
type Artifact struct {
	image string
	files []string
	state map[string]interface{}
}

// BuilderId identifies the builder.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files are the image (and the UEFI variables store when used).
func (a *Artifact) Files() []string { return a.files }

// Id is the image's path.
func (a *Artifact) Id() string { return a.image }

func (a *Artifact) String() string { return fmt.Sprintf("Image: %s", a.image) }

// State carries the keys of internal/artifactstate (source image, guest
// facts the reset provisioner collected, format, firmware, start time), and
// HCP Packer metadata.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		img, err := registryimage.FromArtifact(a,
			registryimage.WithProvider("cloudimg-kvm"),
			registryimage.WithID(a.image),
			registryimage.WithSourceID(fmt.Sprint(a.state[artifactstate.SourceImageURL])),
			registryimage.WithRegion("local"),
			registryimage.SetLabels(map[string]interface{}{
				"format":                a.state[artifactstate.Format],
				"firmware":              a.state[artifactstate.Firmware],
				"source_image_checksum": a.state[artifactstate.SourceImageChecksum],
				"arch":                  a.state[artifactstate.Arch],
			}),
		)
		if err != nil {
			return nil
		}
		return img
	}
	return a.state[name]
}

// Destroy removes the artifact's files, and the output directory when that
// leaves it empty (it may be shared with other builds).
func (a *Artifact) Destroy() error {
	for _, f := range a.files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	_ = os.Remove(filepath.Dir(a.image))
	return nil
}
