//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package metadata is the cloudimg-metadata post-processor: it records what
// each image is and where it came from, beside the image and in an image
// repository. The work is done by internal/imagemeta; this is the Packer layer.
package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/httpclient"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/provenance"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

// BuilderID is the BuilderId of the artifact this post-processor returns.
const BuilderID = "packer-cloudimg.metadata"

// Config is the configuration of the metadata post-processor.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Path of the metadata file written for each image. A template with
	// `{{ .ImagePath }}` (the image's path), `{{ .ImageName }}` (its file
	// name) and `{{ .BuildName }}`. Default `{{ .ImagePath }}.metadata.json`,
	// i.e. beside the image.
	Output string `mapstructure:"output"`
	// Image repository directory. When set, its `index.json` (every image
	// with name, path, id, labels, checksums, size and creation time, plus
	// the newest image per name) and `SHA256SUMS` (GNU format, so
	// `sha256sum -c SHA256SUMS` passes in the directory) are updated under a
	// lock, safely for builds that finish together. Images must be inside
	// this directory (e.g. `output_directory = "<repository>/<image id>"`).
	Repository string `mapstructure:"repository"`
	// Logical image name in the repository index: several builds of one
	// image share it, and the index points to the newest per name.
	// Default: the name Packer gives the post-processor for the build, which
	// is the `source` block's name; builds made from one block by a
	// `dynamic "source"` all get that same name, so set
	// `image_name = source.name` (or any per-build expression) there.
	// (`name` itself is Packer's own name of the post-processor block.)
	ImageName string `mapstructure:"image_name"`
	// Free-form labels recorded with the image, e.g.
	// `{ kubernetes_version = var.kubernetes_version, stage = source.name }`.
	Labels map[string]string `mapstructure:"labels"`
	// Digests to compute, all in one read of the image: any of `sha256`,
	// `sha512`, `sha1`, `md5`. Default `["sha256", "sha512"]`. `sha256` is
	// required with `repository`.
	ChecksumTypes []string `mapstructure:"checksum_types"`
	// Name of the build block, recorded as `build.name` (Packer tells a
	// post-processor only the source name).
	BuildName string `mapstructure:"build_name"`
	// Directory whose git state (commit, branch, remote, dirty) is recorded.
	// Default: the current directory, where Packer runs. Without git the
	// `vcs` section is left out with a warning.
	VCSDirectory string `mapstructure:"vcs_directory"`
	// Retention in the `repository`: after adding the new image, keep the
	// newest `keep_last` images that have its `image_name` and exactly its
	// `labels`, and remove the older ones — image, `<image>.metadata.json`,
	// the sidecars the index lists (SBOM, provenance), the directory when
	// left empty, their `index.json` entries and `SHA256SUMS` lines — under
	// the repository lock. Newest is by build finish time (equal times: the
	// greater path). The image just added is never removed. Images with
	// other labels, or another name, are not touched. An artifact of several
	// images (from another builder) counts as one build: `keep_last` times
	// that many images stay. Default `0`: keep every image.
	KeepLast int `mapstructure:"keep_last"`
	// Software bill of materials written beside each image from the
	// packages installed in the guest (which the
	// `cloudimg-cloudinit-reset` provisioner collects): `"cyclonedx"`
	// (default) writes `<image>.cdx.json` (CycloneDX 1.6 JSON), `"spdx"`
	// writes `<image>.spdx.json` (SPDX 2.3 JSON), `"none"` writes none.
	// Without guest facts in the artifact the SBOM is skipped with a
	// message.
	SBOM string `mapstructure:"sbom"`
	// Write `<image>.intoto.json` beside each image: an unsigned in-toto
	// Statement v1 with an SLSA Provenance v1 predicate (subject: the image
	// and its SHA-256; the source image, the template's git commit, the
	// plugin and Packer versions; the build's start and finish). Default
	// `true`.
	Provenance config.Trilean `mapstructure:"provenance"`
	// Values recorded in the provenance's `externalParameters` under
	// `parameters`, e.g. `{ release = var.release, playbook = var.playbook }`.
	// Packer (HCL2) hands a post-processor neither the template's variables
	// nor which of them are `sensitive`, so the template names here what the
	// provenance should say. Never put a secret here: it would be written in
	// clear.
	ProvenanceParameters map[string]string `mapstructure:"provenance_parameters"`

	// Signing: with `key_file`, the post-processor writes, beside the image
	// and listed in the metadata, `index.json` and `SHA256SUMS`, three
	// Sigstore bundles: `<image>.sigstore.json` (the image file; `cosign
	// verify-blob`), `<image>.provenance.sigstore.json` (the provenance;
	// `cosign verify-blob-attestation --type slsaprovenance1`) and
	// `<image>.sbom.sigstore.json` (the SBOM; `--type cyclonedx` or
	// `spdxjson`), and the metadata records the key's fingerprint. The
	// options are the same as `cloudimg-oci`'s.
	signconfig.Signing `mapstructure:",squash"`

	ctx interpolate.Context
}

// SBOM formats of the sbom option.
const (
	SBOMCycloneDX = "cyclonedx"
	SBOMSPDX      = "spdx"
	SBOMNone      = "none"
)

// pluginModule is this plugin's Go module, as the provenance names it.
const pluginModule = "github.com/packer-cloudimg/packer-plugin-cloudimg"

// PostProcessor is the cloudimg-metadata post-processor.
type PostProcessor struct {
	config Config
	// signer is the loaded key_file (nil: no signing).
	signer *signing.Signer
	// verifiers are the verifier keys (default: the signer's own).
	verifiers []*signing.PublicKey
}

// ConfigSpec returns the HCL2 spec of Config.
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure validates the configuration.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	c := &p.config
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "cloudimg-metadata",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"output"}},
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(format string, a ...any) { errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, a...)) }

	if c.Output == "" {
		c.Output = "{{ .ImagePath }}.metadata.json"
	}
	if err := interpolate.Validate(c.Output, &c.ctx); err != nil {
		add("output: %v", err)
	}
	if len(c.ChecksumTypes) == 0 {
		c.ChecksumTypes = imagemeta.DefaultAlgorithms()
	}
	supported := imagemeta.SupportedAlgorithms()
	seen := map[string]bool{}
	for i, t := range c.ChecksumTypes {
		if !slices.Contains(supported, t) {
			add("checksum_types[%d]: %q is not one of %s", i, t, strings.Join(supported, ", "))
		}
		seen[t] = true
	}
	switch c.SBOM {
	case "":
		c.SBOM = SBOMCycloneDX
	case SBOMCycloneDX, SBOMSPDX, SBOMNone:
	default:
		add("sbom: %q is not one of %s, %s, %s", c.SBOM, SBOMCycloneDX, SBOMSPDX, SBOMNone)
	}
	if (c.SBOM != SBOMNone || !c.Provenance.False()) && !seen["sha256"] && c.Repository == "" {
		// The documents' subject is the image's SHA-256.
		c.ChecksumTypes = append(c.ChecksumTypes, "sha256")
		seen["sha256"] = true
	}
	if c.Repository != "" && !seen["sha256"] {
		add("checksum_types: must include \"sha256\" when repository is set (SHA256SUMS needs it)")
	}
	if c.ImageName == "" {
		c.ImageName = c.PackerBuildName
	}
	if c.KeepLast < 0 {
		add("keep_last: must be 0 (keep every image) or more, not %d", c.KeepLast)
	}
	if c.KeepLast > 0 && c.Repository == "" {
		add("keep_last: only used with repository (set repository, or remove keep_last)")
	}
	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			add("labels: empty label name")
		}
	}
	if err := p.configureSigning(); err != nil {
		add("%v", err)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// PostProcess writes the metadata of each image of the artifact.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, source packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	c := &p.config
	finished := time.Now()

	doc := imagemeta.Metadata{
		Build: imagemeta.Build{
			Name:          c.BuildName,
			SourceName:    c.PackerBuildName,
			BuilderType:   c.PackerBuilderType,
			PackerRunUUID: os.Getenv("PACKER_RUN_UUID"),
			StartedAt:     artifactstate.Time(source, artifactstate.StartedAt),
			FinishedAt:    finished,
			PluginVersion: version.PluginVersion.FormattedVersion(),
			PackerVersion: packerVersion(c.PackerCoreVersion),
		},
		Labels: c.Labels,
	}
	if si, u := artifactstate.String(source, artifactstate.SourceImage), artifactstate.String(source, artifactstate.SourceImageURL); si != "" && u != "" {
		// A chained build on an image pulled from a registry: what its
		// annotations said of it, as the builder recorded.
		var info artifactstate.SourceImageInfo
		if err := json.Unmarshal([]byte(si), &info); err != nil {
			return nil, false, false, fmt.Errorf("cloudimg-metadata: the artifact's %s: %v", artifactstate.SourceImage, err)
		}
		doc.Source = &imagemeta.Source{
			URL: u, Checksum: artifactstate.String(source, artifactstate.SourceImageChecksum),
			ImageName: info.Name, SHA256: info.SHA256, BuildID: info.BuildID, Labels: info.Labels,
		}
	} else if u != "" {
		sum := artifactstate.String(source, artifactstate.SourceImageChecksum)
		// A chained build: the base image's own metadata names it.
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		src, err := imagemeta.DescribeSource(sctx, httpclient.New(), u, sum)
		cancel()
		if err != nil {
			ui.Say(fmt.Sprintf("Warning: %v; the source is recorded by URL and checksum only", err))
		}
		doc.Source = src
	}
	doc.Image.Arch = artifactstate.String(source, artifactstate.Arch) // describe keeps it
	var facts *artifactstate.Facts
	if s := artifactstate.String(source, artifactstate.GuestFacts); s != "" {
		f, err := artifactstate.ParseFacts(s)
		if err != nil {
			return nil, false, false, fmt.Errorf("cloudimg-metadata: %v", err)
		}
		doc.Guest, facts = json.RawMessage(s), f
	}
	firmware := artifactstate.String(source, artifactstate.Firmware)
	images := imageFiles(source)
	if doc.Source == nil && facts == nil {
		ui.Say(fmt.Sprintf("cloudimg-metadata: the artifact of %q carries no source image and no guest facts: recording files and checksums only", source.BuilderId()))
	}
	if facts == nil && c.SBOM != SBOMNone {
		ui.Say("cloudimg-metadata: no SBOM: the artifact carries no guest facts (they come from the cloudimg-cloudinit-reset provisioner)")
	}
	vcsDir := c.VCSDirectory
	if vcsDir == "" {
		vcsDir, _ = os.Getwd()
	}
	if v, err := imagemeta.GitInfoContext(ctx, vcsDir); err == nil {
		doc.VCS = v
	} else {
		ui.Say(fmt.Sprintf("Warning: no git information recorded: %v", err))
	}

	var repo *imagemeta.Repo
	if c.Repository != "" {
		repo = &imagemeta.Repo{Dir: c.Repository, Warn: func(m string) { ui.Say("Warning: " + m) }}
	}

	files := append([]string(nil), source.Files()...)
	// keep_last counts builds: an artifact of several images (another
	// builder's) keeps that many per build, so that none of this build's
	// images removes another.
	keep := c.KeepLast * len(images)
	build := buildRecord{doc: doc, firmware: firmware, facts: facts, builderID: source.BuilderId(), repo: repo, keep: keep}
	for _, f := range images {
		rec, err := p.newImageRecord(ui, &build, f)
		if err != nil {
			return nil, false, false, err
		}
		if err := rec.run(ctx); err != nil {
			return nil, false, false, err
		}
		files = append(files, rec.written...)
	}
	// The image stays: the returned artifact holds it too.
	return &Artifact{files: files, source: source}, true, true, nil
}

// provenanceInput is what the provenance of one image says. Its external
// parameters are the post-processor's own view of the template: Packer
// (1.11, HCL2) hands a post-processor neither the template's variables nor
// which of them are sensitive (packer/build.go passes them only to JSON
// templates), so only what the template names in provenance_parameters is
// recorded, besides the labels (which are in the metadata and the index).
func (p *PostProcessor) provenanceInput(subject, sha256Hex, builderID string, doc *imagemeta.Metadata) provenance.Input {
	c := &p.config
	params := map[string]any{"source": c.PackerBuildName, "builder_type": c.PackerBuilderType, "image_name": c.ImageName}
	if c.BuildName != "" {
		params["build"] = c.BuildName
	}
	if len(c.Labels) > 0 {
		labels := map[string]any{}
		for k, v := range c.Labels {
			labels[k] = v
		}
		params["labels"] = labels
	}
	if len(c.ProvenanceParameters) > 0 {
		pp := map[string]any{}
		for k, v := range c.ProvenanceParameters {
			pp[k] = v
		}
		params["parameters"] = pp
	}
	in := provenance.Input{
		Image:              provenance.Image{Name: subject, SHA256: sha256Hex},
		BuilderID:          builderID,
		ExternalParameters: params,
		PluginModule:       pluginModule,
		PluginVersion:      doc.Build.PluginVersion,
		PackerVersion:      doc.Build.PackerVersion,
		InvocationID:       doc.Build.PackerRunUUID,
		StartedOn:          doc.Build.StartedAt,
		FinishedOn:         doc.Build.FinishedAt,
	}
	if s := doc.Source; s != nil {
		in.Source = &provenance.Source{URL: s.URL, Checksum: s.Checksum}
	}
	if v := doc.VCS; v != nil {
		in.Template = &provenance.Template{Remote: v.Remote, Branch: v.Branch, Commit: v.Commit, Dirty: v.Dirty}
	}
	return in
}

// inside reports whether the absolute path p is inside the directory dir.
func inside(dir, p string) bool {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// documentSuffixes end the names of the documents this post-processor
// writes beside an image.
var documentSuffixes = []string{".metadata.json", ".cdx.json", ".spdx.json", ".intoto.json", ".sigstore.json"}

// imageFiles are the files to describe: every file of the artifact but
// the documents this post-processor writes and the UEFI variables store that a cloudimg-kvm artifact
// carries beside its image (an artifact whose Id is one of its files is
// described by that file alone).
func imageFiles(a packersdk.Artifact) []string {
	files := a.Files()
	if slices.Contains(files, a.Id()) {
		return []string{a.Id()}
	}
	var out []string
	for _, f := range files {
		if !slices.ContainsFunc(documentSuffixes, func(s string) bool { return strings.HasSuffix(f, s) }) {
			out = append(out, f)
		}
	}
	return out
}

// packerVersion is the Packer version when Packer tells it, else what the
// parent process (Packer runs its plugins) says of itself, else "".
func packerVersion(fromConfig string) string {
	if fromConfig != "" {
		return fromConfig
	}
	if runtime.GOOS != "linux" {
		return ""
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(os.Getppid()) + "/exe")
	if err != nil || !strings.Contains(filepath.Base(exe), "packer") {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "--version")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "Packer v")
}
