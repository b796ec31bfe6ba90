package kvm

import (
	"fmt"
	"os"
	"path/filepath"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"
)

// Artifact keys in State.
const (
	StateSourceImageURL      = "source_image_url"
	StateSourceImageChecksum = "source_image_checksum"
	StateGuestFacts          = "guest_facts"
	StateFormat              = "format"
	StateStartedAt           = "started_at"
	StateFirmware            = "firmware" // "bios" or "uefi"
	StateArch                = "arch"     // "amd64" or "arm64" (the config's arch)
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

// State carries the source image, the guest facts the reset provisioner
// collected, and HCP Packer metadata.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		img, err := registryimage.FromArtifact(a,
			registryimage.WithProvider("cloudimg-kvm"),
			registryimage.WithID(a.image),
			registryimage.WithSourceID(fmt.Sprint(a.state[StateSourceImageURL])),
			registryimage.WithRegion("local"),
			registryimage.SetLabels(map[string]interface{}{
				"format":                a.state[StateFormat],
				"firmware":              a.state[StateFirmware],
				"arch":                  a.state[StateArch],
				"source_image_checksum": a.state[StateSourceImageChecksum],
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
