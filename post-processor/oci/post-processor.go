//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package oci is the cloudimg-oci post-processor: it pushes each image of
// the artifact to an OCI registry, with the SBOM and provenance that
// cloudimg-metadata wrote as referrers, under moving tags and one immutable
// tag per build, and applies keep_last in the registry. The work is done by
// internal/ociregistry; this is the Packer layer.
package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// BuilderID is the BuilderId of the artifact this post-processor returns.
const BuilderID = "packer-cloudimg.oci"

// Config is the configuration of the cloudimg-oci post-processor.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	ociconfig.Config    `mapstructure:",squash"`
	// Signing in the registry: with a key, each pushed manifest gets
	// Sigstore bundles attached as referrers (artifactType
	// `application/vnd.dev.sigstore.bundle.v0.3+json`), as cosign v3 signs
	// an image, so that `cosign verify --key` and `cosign verify-attestation
	// --key … --type slsaprovenance1` (and `cyclonedx` / `spdxjson`) pass on
	// the pushed reference. See the options below.
	signconfig.Signing `mapstructure:",squash"`

	// The registry repository to push to, `host[:port]/path` (an `oci://`
	// prefix is accepted), e.g. `registry.example.org/team/nodes`. No tag
	// here: see `tags`.
	Repository string `mapstructure:"repository" required:"true"`
	// Tags to point at the image once it is complete, e.g.
	// `["latest", "2026.12"]`. Besides these, every image gets its own
	// immutable tag `<image name>-<arch>-<finish time>-<sha256 prefix>`,
	// e.g. `node-amd64-20261206T101500Z-3f2a9c1b7d4e`, so that each build
	// stays addressable. When the same run (the same Packer run UUID) pushes
	// the same image name for `amd64` and `arm64`, each of these tags ends
	// as an OCI image index of both.
	Tags []string `mapstructure:"tags"`
	// `containerdisk` (default): an OCI image whose one uncompressed tar
	// layer holds `disk/<file>` owned by 107:107, usable as a KubeVirt
	// `containerDisk` and a CDI `registry` import as it is. `artifact`: an
	// OCI artifact whose one blob is the disk file, titled with its file
	// name (`oras pull` writes it under that name).
	Layout string `mapstructure:"layout"`
	// Push the images these `cloudimg-metadata` documents
	// (`<image>.metadata.json`) describe, with their SBOM and provenance,
	// instead of the artifact's files: a push-only run (for example from
	// Packer's `null` builder) that publishes an image built earlier, or
	// completes a push that was cut off. Relative paths are relative to
	// where Packer runs.
	MetadataFiles []string `mapstructure:"metadata_files"`
	// The image name, used only for an image without a metadata document
	// (this post-processor run without `cloudimg-metadata` before it).
	// Default: the name of the `source` block. With metadata, its
	// `image.name` is used.
	ImageName string `mapstructure:"image_name"`
	// Labels, used only for an image without a metadata document; with
	// metadata, its labels are used.
	Labels map[string]string `mapstructure:"labels"`
	// After pushing, keep the newest `keep_last` images in the repository
	// with this image's name, architecture and exactly its labels, and
	// delete the older ones with their referrers. An older image that a tag
	// other than its own build tag still names (directly or in an index)
	// is kept. Blobs are left to the registry's garbage collection. A
	// registry that allows no deletion fails the build with nothing
	// removed. Default `0`: delete nothing. Never use it where a rollback
	// needs the older images.
	KeepLast int `mapstructure:"keep_last"`
}

// PostProcessor is the cloudimg-oci post-processor.
type PostProcessor struct {
	config    Config
	ref       ociregistry.Reference
	signer    *signing.Signer
	verifiers []*signing.PublicKey
}

// ConfigSpec returns the HCL2 spec of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure validates the configuration; every error names its option.
// Nothing is sent to the registry.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	c := &p.config
	if err := config.Decode(c, &config.DecodeOpts{PluginType: "cloudimg-oci", Interpolate: true}, raws...); err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(format string, a ...any) { errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, a...)) }
	if c.Repository == "" {
		add("repository: required, e.g. registry.example.org/team/nodes")
	} else if ref, err := ociregistry.ParseReference(c.Repository); err != nil {
		add("repository: %v", err)
	} else if ref.Reference != "" {
		add("repository: %q names a tag or digest: give the repository alone and the tags in tags", c.Repository)
	} else {
		p.ref = ref
	}
	for i, t := range c.Tags {
		if !ociregistry.ValidTag(t) {
			add("tags[%d]: %q is not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)", i, t)
		}
	}
	switch c.Layout {
	case "":
		c.Layout = ociregistry.LayoutContainerDisk
	case ociregistry.LayoutContainerDisk, ociregistry.LayoutArtifact:
	default:
		add("layout: %q is not one of %s, %s", c.Layout, ociregistry.LayoutContainerDisk, ociregistry.LayoutArtifact)
	}
	if c.KeepLast < 0 {
		add("keep_last: must be 0 (delete nothing) or more, not %d", c.KeepLast)
	}
	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			add("labels: empty label name")
		}
	}
	if c.ImageName == "" {
		c.ImageName = c.PackerBuildName
	}
	for _, err := range c.Config.Validate() {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	signer, verifiers, err := c.Signing.Load()
	if err != nil {
		add("%v", err)
	}
	p.signer, p.verifiers = signer, verifiers
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// PostProcess pushes each image of the artifact (or of metadata_files).
// The returned artifact is the input's files and state; its Id is the
// pushed manifest's reference by digest (the last one's, for several).
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, source packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	c := &p.config
	pushes, err := p.pushes(source)
	if err != nil {
		return nil, false, false, fmt.Errorf("cloudimg-oci: %w", err)
	}
	client, err := ociregistry.Open(p.ref, c.Options())
	if err != nil {
		return nil, false, false, fmt.Errorf("cloudimg-oci: %w", err)
	}
	a := &Artifact{source: source}
	for _, push := range pushes {
		push.Layout, push.Tags = c.Layout, c.Tags
		push.Progress = func(s string) { ui.Say(s) }
		if p.signer != nil {
			if push.Attest, err = ociregistry.Attester(p.signer, p.verifiers, push.Documents); err != nil {
				return nil, false, false, fmt.Errorf("cloudimg-oci: %w", err)
			}
		}
		res, err := client.Push(ctx, push)
		if err != nil {
			return nil, false, false, fmt.Errorf("cloudimg-oci: %s: %w", push.Image.Path, err)
		}
		ui.Say(fmt.Sprintf("Pushed %s as %s (%s; sha256 %s), tags %s; %d blobs sent, %d already there; %d referrers",
			filepath.Base(push.Image.Path), res.Ref.URL(), c.Layout, res.SHA256, strings.Join(res.Tags, ", "), res.BlobsSent, res.BlobsSkipped, len(res.Referrers)))
		a.refs = append(a.refs, res.Ref.URL())
		if c.KeepLast > 0 {
			removed, kept, err := client.KeepLast(ctx, c.KeepLast, push.Image.Name, push.Image.Arch, push.Image.Labels)
			for _, k := range kept {
				ui.Say(fmt.Sprintf("keep_last = %d: kept the older %s (%s)", c.KeepLast, k.Entry.Ref, k.Why))
			}
			for _, r := range removed {
				ui.Say(fmt.Sprintf("keep_last = %d: deleted the older %s of %q %s (created %s) and its %d referrers",
					c.KeepLast, r.Entry.Ref, r.Entry.Name, imagemeta.FormatLabels(r.Entry.Labels), r.Entry.Created.Format(time.RFC3339), r.Referrers))
			}
			if err != nil {
				return nil, false, false, fmt.Errorf("cloudimg-oci: %w", err)
			}
		}
	}
	return a, true, true, nil
}

// pushes are the images to push: those of metadata_files; else those the
// artifact's metadata documents describe; else the artifact's image files,
// described by the artifact's state and this configuration.
func (p *PostProcessor) pushes(source packersdk.Artifact) ([]ociregistry.Push, error) {
	c := &p.config
	docs := c.MetadataFiles
	if len(docs) == 0 {
		for _, f := range source.Files() {
			if strings.HasSuffix(f, ".metadata.json") {
				docs = append(docs, f)
			}
		}
	}
	var out []ociregistry.Push
	if len(docs) > 0 {
		for _, d := range docs {
			push, err := fromMetadata(d)
			if err != nil {
				return nil, err
			}
			out = append(out, push)
		}
		return out, nil
	}
	images := artifactstate.ImageFiles(source.Files(), source.Id())
	if len(images) == 0 {
		return nil, errors.New("the artifact has no image file (give metadata_files for a push-only run)")
	}
	arch := artifactstate.String(source, artifactstate.Arch)
	if arch == "" {
		arch = "amd64"
	}
	format := artifactstate.String(source, artifactstate.Format)
	for _, f := range images {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("image file: %w", err)
		}
		if format == "" {
			format = "qcow2"
		}
		out = append(out, ociregistry.Push{Image: ociregistry.Image{
			Path: f, Name: c.ImageName, Labels: c.Labels, Arch: arch, Format: format,
			Firmware: artifactstate.String(source, artifactstate.Firmware),
			// Without metadata the file's modification time (the end of
			// its build) stands for the build's finish, so that pushing
			// the same file again gives the same digests.
			Created:   st.ModTime().UTC().Truncate(time.Second),
			BuildID:   os.Getenv("PACKER_RUN_UUID"),
			SourceURL: imagemeta.StripURLCredentials(artifactstate.String(source, artifactstate.SourceImageURL)),
		}})
	}
	return out, nil
}

// sidecarTypes maps a metadata sidecar kind to the artifactType its
// referrer gets.
var sidecarTypes = map[string]string{
	imagemeta.SidecarCycloneDX:  ociregistry.ArtifactTypeCycloneDX,
	imagemeta.SidecarSPDX:       ociregistry.ArtifactTypeSPDX,
	imagemeta.SidecarProvenance: ociregistry.ArtifactTypeInToto,
}

// fromMetadata is the push of the image a metadata document describes,
// with its SBOM and provenance; paths in it are relative to its directory.
func fromMetadata(path string) (ociregistry.Push, error) {
	m, err := imagemeta.ReadMetadata(path)
	if err != nil {
		return ociregistry.Push{}, fmt.Errorf("metadata %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	sha := m.Image.Checksums["sha256"]
	if sha == "" {
		return ociregistry.Push{}, fmt.Errorf("metadata %s: no sha256 checksum (its checksum_types must include sha256)", path)
	}
	arch := m.Image.Arch
	if arch == "" {
		arch = "amd64"
	}
	im := ociregistry.Image{
		Path: rel(m.Image.Path), SHA256: sha, Name: m.Image.Name, Labels: m.Labels, Arch: arch,
		Format: m.Image.Format, Firmware: m.Image.Firmware, Created: m.Build.FinishedAt,
		BuildID: m.BuildID(),
	}
	if m.Source != nil {
		im.SourceURL = imagemeta.StripURLCredentials(m.Source.URL)
	}
	if v := m.VCS; v != nil {
		im.Revision = v.Commit
		// Only a remote that is a URL names a source others can reach; a
		// local path would only leak the build host's layout.
		if r := imagemeta.StripURLCredentials(v.Remote); strings.Contains(r, "://") && !strings.HasPrefix(r, "file:") {
			im.VCSSource = strings.TrimPrefix(r, "git+")
		}
	}
	if im.Created.IsZero() {
		return ociregistry.Push{}, fmt.Errorf("metadata %s: no build.finished_at", path)
	}
	push := ociregistry.Push{Image: im}
	for _, s := range m.Sidecars {
		if t, ok := sidecarTypes[s.Kind]; ok {
			push.Documents = append(push.Documents, ociregistry.Document{Path: rel(s.Path), ArtifactType: t})
		}
	}
	slices.SortFunc(push.Documents, func(a, b ociregistry.Document) int { return strings.Compare(a.ArtifactType, b.ArtifactType) })
	return push, nil
}
