//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package metadata is the cloudimg-metadata post-processor: it records what
// each image is and where it came from, beside the image and in an image
// repository. The work is done by internal/imagemeta; this is the Packer layer.
package metadata

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/packer-cloudimg/packer-plugin-cloudimg/builder/kvm"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
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
	if c.Repository != "" && !seen["sha256"] {
		add("checksum_types: must include \"sha256\" when repository is set (SHA256SUMS needs it)")
	}
	if c.ImageName == "" {
		c.ImageName = c.PackerBuildName
	}
	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			add("labels: empty label name")
		}
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
	ours := source.BuilderId() == kvm.BuilderID
	if !ours {
		ui.Say(fmt.Sprintf("cloudimg-metadata: the artifact comes from %q, not cloudimg-kvm: recording files and checksums only (no source image, no guest facts)", source.BuilderId()))
	}

	doc := imagemeta.Metadata{
		Build: imagemeta.Build{
			Name:          c.BuildName,
			SourceName:    c.PackerBuildName,
			BuilderType:   c.PackerBuilderType,
			PackerRunUUID: os.Getenv("PACKER_RUN_UUID"),
			FinishedAt:    finished,
			PluginVersion: version.PluginVersion.FormattedVersion(),
			PackerVersion: packerVersion(c.PackerCoreVersion),
		},
		Labels: c.Labels,
	}
	firmware := ""
	if ours {
		if u, ok := source.State(kvm.StateSourceImageURL).(string); ok && u != "" {
			doc.Source = &imagemeta.Source{URL: u}
			if sum, ok := source.State(kvm.StateSourceImageChecksum).(string); ok {
				doc.Source.Checksum = sum
			}
		}
		if facts, ok := source.State(kvm.StateGuestFacts).(string); ok && facts != "" {
			if !json.Valid([]byte(facts)) {
				return nil, false, false, errors.New("cloudimg-metadata: the guest facts in the artifact are not valid JSON")
			}
			doc.Guest = json.RawMessage(facts)
		}
		if s, ok := source.State(kvm.StateFirmware).(string); ok {
			firmware = s
		}
		if s, ok := source.State(kvm.StateArch).(string); ok {
			doc.Image.Arch = s // record keeps it
		}
		if s, ok := source.State(kvm.StateStartedAt).(string); ok {
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				doc.Build.StartedAt = t
			}
		}
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
	for _, f := range imageFiles(source, ours) {
		meta, err := p.record(ctx, ui, f, firmware, doc, repo)
		if err != nil {
			return nil, false, false, err
		}
		files = append(files, meta)
	}
	// The image stays: the returned artifact holds it too.
	return &Artifact{files: files, source: source}, true, true, nil
}

// record writes one image's metadata file and adds it to the repository.
func (p *PostProcessor) record(ctx context.Context, ui packersdk.Ui, image, firmware string, doc imagemeta.Metadata, repo *imagemeta.Repo) (string, error) {
	c := &p.config
	if st, err := os.Stat(image); err != nil {
		return "", fmt.Errorf("cloudimg-metadata: image file: %w", err)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("cloudimg-metadata: %s is not a regular file", image)
	}
	c.ctx.Data = map[string]string{"ImagePath": image, "ImageName": filepath.Base(image), "BuildName": c.PackerBuildName}
	out, err := interpolate.Render(c.Output, &c.ctx)
	if err != nil {
		return "", fmt.Errorf("cloudimg-metadata: output: %w", err)
	}

	ui.Say(fmt.Sprintf("Hashing %s (%s)...", image, strings.Join(c.ChecksumTypes, ", ")))
	img, err := imagemeta.DescribeImage(ctx, image, out, c.ChecksumTypes)
	if err != nil {
		return "", fmt.Errorf("cloudimg-metadata: %s: %w", image, err)
	}
	img.Name = c.ImageName
	img.Firmware = firmware
	img.Arch = doc.Image.Arch
	doc.Image = img
	if err := imagemeta.WriteMetadata(out, &doc); err != nil {
		return "", fmt.Errorf("cloudimg-metadata: writing %s: %w", out, err)
	}
	ui.Say("Wrote " + out)

	if repo != nil {
		entry := imagemeta.IndexEntry{
			Name:      c.ImageName,
			Labels:    c.Labels,
			Checksums: img.Checksums,
			Size:      img.SizeBytes,
			Firmware:  firmware,
			Created:   doc.Build.FinishedAt,
		}
		// Add takes a relative path as relative to the repository; the
		// artifact's is relative to where Packer runs.
		abs, err := filepath.Abs(image)
		if err != nil {
			return "", fmt.Errorf("cloudimg-metadata: %w", err)
		}
		if err := repo.Add(entry, img.Checksums["sha256"], abs); err != nil {
			return "", fmt.Errorf("cloudimg-metadata: repository %s: %w", c.Repository, err)
		}
		ui.Say(fmt.Sprintf("Added %s to the repository %s (index.json, SHA256SUMS)", filepath.Base(image), c.Repository))
	}
	return out, nil
}

// imageFiles are the files to describe: the image of a cloudimg-kvm
// artifact, or every file of another builder's artifact.
func imageFiles(a packersdk.Artifact, ours bool) []string {
	if ours {
		return []string{a.Id()}
	}
	var out []string
	for _, f := range a.Files() {
		if !strings.HasSuffix(f, ".metadata.json") {
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
