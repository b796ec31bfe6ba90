package oci

import (
	"fmt"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Artifact is the input artifact, pushed: its files and state are the
// input's; its Id is the pushed manifest's reference by digest.
type Artifact struct {
	source packersdk.Artifact
	// refs are the pushed manifests, `oci://host/repo@sha256:…`.
	refs []string
}

// BuilderId identifies the post-processor.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files are the input artifact's files: the images stay where they are.
func (a *Artifact) Files() []string { return a.source.Files() }

// Id is the last pushed manifest's reference by digest,
// `oci://host/repo@sha256:…`.
func (a *Artifact) Id() string {
	if len(a.refs) == 0 {
		return a.source.Id()
	}
	return a.refs[len(a.refs)-1]
}

func (a *Artifact) String() string {
	return fmt.Sprintf("%s\nPushed: %s", a.source.String(), strings.Join(a.refs, ", "))
}

// State is the input artifact's state.
func (a *Artifact) State(name string) interface{} { return a.source.State(name) }

// Destroy leaves the registry as it is (what was pushed stays pushed) and
// destroys the input artifact.
func (a *Artifact) Destroy() error { return a.source.Destroy() }
