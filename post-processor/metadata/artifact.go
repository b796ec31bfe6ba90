package metadata

import (
	"fmt"
	"os"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Artifact is the input artifact's files plus the metadata files. Its State
// is the input artifact's, so HCP Packer metadata passes through.
type Artifact struct {
	files  []string
	source packersdk.Artifact
}

// BuilderId identifies the post-processor.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files are the images and their metadata files.
func (a *Artifact) Files() []string { return a.files }

// Id is the input artifact's id.
func (a *Artifact) Id() string { return a.source.Id() }

func (a *Artifact) String() string {
	return fmt.Sprintf("%s\nMetadata: %s", a.source.String(), strings.Join(a.files[len(a.source.Files()):], ", "))
}

// State is the input artifact's state.
func (a *Artifact) State(name string) interface{} { return a.source.State(name) }

// Destroy removes the metadata files, then the input artifact.
func (a *Artifact) Destroy() error {
	for _, f := range a.files[len(a.source.Files()):] {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return a.source.Destroy()
}
