//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,DatasourceOutput
//go:generate go tool packer-sdc struct-markdown

// Package repository is the cloudimg-repository data source: it reads an
// image repository (the index.json the cloudimg-metadata post-processor
// keeps) from a directory or an http(s) URL and outputs the newest image of
// a name and labels, ready for a chained build's iso_url and iso_checksum.
// The work is done by internal/imagemeta; this is the Packer layer.
package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/httpclient"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/unknown"
)

// DefaultTimeout bounds reading the index and the metadata unless
// `timeout` says otherwise.
const DefaultTimeout = time.Minute

// Config is the configuration of the cloudimg-repository data source.
type Config struct {
	// The image repository: its directory (relative to where Packer runs),
	// a `file://` URL, or the `https://` or `http://` URL of the directory
	// or of its `index.json` — what the `cloudimg-metadata`
	// post-processor's `repository` wrote, served as it is.
	Repository string `mapstructure:"repository" required:"true"`
	// The image name to find: the post-processor's `image_name` (by
	// default the name of the `source` block that built it).
	ImageName string `mapstructure:"image_name" required:"true"`
	// Labels the image must have, each with this value; the image may have
	// more. Empty: any image of the name.
	Labels map[string]string `mapstructure:"labels"`
	// How long reading `index.json` and the image's metadata may take.
	// Default `1m`.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DatasourceOutput is the newest matching image.
type DatasourceOutput struct {
	// Where the image is, for `iso_url`: an absolute file path for a
	// repository directory, else the image's URL (its path resolved against
	// the repository URL).
	URL string `mapstructure:"url"`
	// `sha256:<hex>`, for `iso_checksum`.
	Checksum string `mapstructure:"checksum"`
	// The image's path inside the repository, as `index.json` lists it.
	Path string `mapstructure:"path"`
	// All the image's labels.
	Labels map[string]string `mapstructure:"labels"`
	// When the image's build finished (`created` in the index), RFC 3339 in
	// UTC.
	FinishedAt string `mapstructure:"finished_at"`
	// The build that made the image: its Packer run UUID
	// (`build.packer_run_uuid` in the image's metadata). Builds of one
	// `packer build` run share it. Empty without metadata.
	BuildID string `mapstructure:"build_id"`
	// `bios` or `uefi`: what the image boots with, when recorded. A build
	// from it needs the same `firmware` in its source (set it there as a
	// literal: the builder checks `firmware` in `packer validate`, when this
	// output is not known yet).
	Firmware string `mapstructure:"firmware"`
	// Where the image's metadata document is (path or URL); empty when the
	// repository has none for it. The outputs below come from it.
	MetadataURL string `mapstructure:"metadata_url"`
	// The URL of the image the build started from (its `source.url`).
	SourceURL string `mapstructure:"source_url"`
	// That source's checksum as it was given to the build.
	SourceChecksum string `mapstructure:"source_checksum"`
	// The guest OS: `ID` of the guest's os-release, e.g. `debian`.
	OSID string `mapstructure:"os_id"`
	// `VERSION_ID` of the guest's os-release, e.g. `12`.
	OSVersionID string `mapstructure:"os_version_id"`
	// `PRETTY_NAME` of the guest's os-release, e.g.
	// `Debian GNU/Linux 12 (bookworm)`.
	OSName string `mapstructure:"os_name"`
}

// Datasource is the cloudimg-repository data source.
type Datasource struct {
	config Config
	// client fetches from http(s) repositories; nil: a client that honours
	// the proxy environment variables.
	client *http.Client
}

// ConfigSpec returns the HCL2 spec of Config.
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// OutputSpec returns the HCL2 spec of DatasourceOutput.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	return (&DatasourceOutput{}).FlatMapstructure().HCL2Spec()
}

// Configure decodes and validates the configuration; every error names its
// option. Nothing is read: the repository may not exist yet when
// `packer validate` runs (its base build has not run).
func (d *Datasource) Configure(raws ...interface{}) error {
	if err := config.Decode(&d.config, &config.DecodeOpts{PluginType: "cloudimg-repository"}, raws...); err != nil {
		return err
	}
	c := &d.config
	var errs *packersdk.MultiError
	add := func(format string, a ...any) { errs = packersdk.MultiErrorAppend(errs, fmt.Errorf(format, a...)) }
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		add("timeout: must be positive, not %s", c.Timeout)
	}
	switch c.Repository {
	case "":
		add("repository: required (the repository directory or its http(s) URL)")
	case unknown.Value: // checked when known, in Execute
	default:
		if _, err := imagemeta.ParseLocation(c.Repository); err != nil {
			add("repository: %v", strings.TrimPrefix(err.Error(), "imagemeta: "))
		}
	}
	if strings.TrimSpace(c.ImageName) == "" {
		add("image_name: required (the cloudimg-metadata post-processor's image_name)")
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

// Execute reads the index and outputs the newest matching image.
func (d *Datasource) Execute() (cty.Value, error) {
	c := d.config
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	client := d.client
	if client == nil {
		client = httpclient.New()
	}
	out, err := find(ctx, client, c.Repository, c.ImageName, c.Labels)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (timeout %s)", err, c.Timeout)
		}
		return cty.NullVal(cty.EmptyObject), fmt.Errorf("cloudimg-repository: %w", err)
	}
	log.Printf("[INFO] cloudimg-repository: %q %s in %s is %s (%s, finished %s)",
		c.ImageName, imagemeta.FormatLabels(c.Labels), imagemeta.StripURLCredentials(c.Repository),
		imagemeta.StripURLCredentials(out.URL), out.Checksum, out.FinishedAt)
	return hcl2helper.HCL2ValueFromConfig(out, d.OutputSpec()), nil
}

// find is Execute's work: the newest image of name with labels in the
// repository at loc, with what its metadata says.
func find(ctx context.Context, client *http.Client, loc, name string, labels map[string]string) (DatasourceOutput, error) {
	l, err := imagemeta.ParseLocation(loc)
	if err != nil {
		return DatasourceOutput{}, fmt.Errorf("repository: %w", err)
	}
	idx, err := l.ReadIndex(ctx, client)
	if err != nil {
		return DatasourceOutput{}, err
	}
	e, err := idx.Newest(name, labels)
	if err != nil {
		return DatasourceOutput{}, fmt.Errorf("%s: %w", l.Show(imagemeta.IndexFile), err)
	}
	sum := e.Checksums["sha256"]
	if sum == "" {
		return DatasourceOutput{}, fmt.Errorf("%s: image %s has no sha256 checksum", l.Show(imagemeta.IndexFile), e.Path)
	}
	out := DatasourceOutput{
		URL:        l.Resolve(e.Path),
		Checksum:   "sha256:" + sum,
		Path:       e.Path,
		Labels:     e.Labels,
		FinishedAt: e.Created.UTC().Format(time.RFC3339),
		Firmware:   e.Firmware,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{} // an empty map, not null, for lookup()
	}
	m, err := l.ReadEntryMetadata(ctx, client, e)
	if err != nil {
		return DatasourceOutput{}, err
	}
	if m == nil {
		log.Printf("[WARN] cloudimg-repository: %s has no metadata document: build_id, source and OS outputs are empty", e.Path)
		return out, nil
	}
	if got := m.Image.Checksums["sha256"]; got != "" && got != sum {
		return DatasourceOutput{}, fmt.Errorf("%s records sha256 %s for the image, index.json %s: the repository is inconsistent", l.Show(imagemeta.MetadataPath(e)), got, sum)
	}
	out.MetadataURL = l.Resolve(imagemeta.MetadataPath(e))
	out.BuildID = m.BuildID()
	if m.Source != nil {
		out.SourceURL, out.SourceChecksum = m.Source.URL, m.Source.Checksum
	}
	if len(m.Guest) > 0 {
		var g struct {
			OSRelease map[string]string `json:"os_release"`
		}
		if err := json.Unmarshal(m.Guest, &g); err == nil {
			out.OSID, out.OSVersionID, out.OSName = g.OSRelease["ID"], g.OSRelease["VERSION_ID"], g.OSRelease["PRETTY_NAME"]
		}
	}
	return out, nil
}
