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
	"encoding/hex"
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
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociconfig"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
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
	// post-processor's `repository` wrote, served as it is; or a registry
	// repository that the `cloudimg-oci` post-processor pushed to,
	// `oci://host[:port]/path` (the images and their labels are then read
	// from the manifests' annotations).
	Repository string `mapstructure:"repository" required:"true"`
	// Registry access for an `oci://` repository (see the options below).
	ociconfig.Config `mapstructure:",squash"`
	// For an `oci://` repository: the architecture the image must be for,
	// `amd64` or `arm64`; `url` then names that platform's manifest even
	// when a tag names a multi-platform index. Default: any (the newest
	// image of any architecture).
	Arch string `mapstructure:"arch"`
	// The image name to find: the post-processor's `image_name` (by
	// default the name of the `source` block that built it).
	ImageName string `mapstructure:"image_name" required:"true"`
	// Labels the image must have, each with this value; the image may have
	// more. Empty: any image of the name.
	Labels map[string]string `mapstructure:"labels"`
	// How long reading `index.json` and the image's metadata may take.
	// Default `1m`.
	Timeout time.Duration `mapstructure:"timeout"`
	// Public keys (PEM files such as `cosign.pub`, or `env://NAME`) one of
	// which must have signed the image: several keys let a key be rotated.
	// When set, the image is refused — with an error naming it, the key
	// fingerprints tried and what failed — unless its Sigstore bundle
	// `<image>.sigstore.json` verifies against the image's SHA-256 in the
	// index, and its signed provenance `<image>.provenance.sigstore.json`
	// verifies too, names this `image_name` and `labels` and the build's
	// finish time the index gives (so that no other validly signed image
	// can be swapped in by editing `index.json`). What the
	// `cloudimg-metadata` post-processor writes with `key_file`. For an
	// `oci://` repository the same is checked in the registry, as `cosign
	// verify` and `cosign verify-attestation --type slsaprovenance1` do:
	// among the manifest's referrers, a signature of the manifest and its
	// signed provenance (what `cloudimg-oci` attaches with `key_file`).
	// Default: nothing is verified.
	VerifyKey []string `mapstructure:"verify_key"`
}

// DatasourceOutput is the newest matching image.
type DatasourceOutput struct {
	// Where the image is, for `iso_url`: an absolute file path for a
	// repository directory, the image's URL (its path resolved against
	// the repository URL) for an http(s) one, and for an `oci://` one its
	// manifest by digest, `oci://host/path@sha256:<manifest digest>`, which
	// the cloudimg-kvm builder pulls.
	URL string `mapstructure:"url"`
	// `sha256:<hex>`, for `iso_checksum`.
	Checksum string `mapstructure:"checksum"`
	// The image's path inside the repository, as `index.json` lists it;
	// for `oci://`, the disk's file name.
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
	// repository has none for it (and for `oci://`, where `source_url`
	// comes from the manifest's annotations and the `os_*` outputs are
	// empty). The outputs below come from it.
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
	// With `verify_key`: the fingerprint (hex SHA-256 of the public key's
	// DER) of the key that verified the image; empty without `verify_key`.
	KeyFingerprint string `mapstructure:"key_fingerprint"`
}

// Datasource is the cloudimg-repository data source.
type Datasource struct {
	config Config
	// keys are the verify_key keys (none: nothing is verified).
	keys []*signing.PublicKey
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
		if ociregistry.IsReference(c.Repository) {
			if ref, err := ociregistry.ParseReference(c.Repository); err != nil {
				add("repository: %v", err)
			} else if ref.Reference != "" {
				add("repository: %q names a tag or digest: give the repository alone", c.Repository)
			}
		} else if _, err := imagemeta.ParseLocation(c.Repository); err != nil {
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
	switch c.Arch {
	case "", "amd64", "arm64", unknown.Value:
	default:
		add("arch: %q is not amd64 or arm64", c.Arch)
	}
	for _, err := range c.Config.Validate() {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	d.keys = nil
	for i, ref := range c.VerifyKey {
		if ref == unknown.Value {
			continue
		}
		k, err := signing.LoadPublicKey(ref)
		if err != nil {
			add("verify_key[%d]: %v", i, err)
			continue
		}
		d.keys = append(d.keys, k)
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
	var out DatasourceOutput
	var err error
	if ociregistry.IsReference(c.Repository) {
		out, err = findOCI(ctx, &c, d.keys)
	} else {
		out, err = find(ctx, client, c.Repository, c.ImageName, c.Labels)
		if err == nil && len(d.keys) > 0 {
			err = verifyImage(ctx, client, c.Repository, &out, c.ImageName, c.Labels, d.keys)
		}
	}
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

// findOCI is find for an oci:// repository: the newest image of the name,
// labels and arch among the manifests cloudimg-oci pushed, from their
// annotations. url names its platform manifest by digest.
//
// With keys (verify_key), the image must be signed in the registry as
// cloudimg-oci signs it, and its signed provenance must name the image name
// and labels (ociregistry.Client.Verify); otherwise it is refused.
func findOCI(ctx context.Context, c *Config, keys []*signing.PublicKey) (DatasourceOutput, error) {
	ref, err := ociregistry.ParseReference(c.Repository)
	if err != nil {
		return DatasourceOutput{}, fmt.Errorf("repository: %w", err)
	}
	client, err := ociregistry.Open(ref, c.Config.Options())
	if err != nil {
		return DatasourceOutput{}, err
	}
	e, err := client.Newest(ctx, c.ImageName, c.Labels, c.Arch)
	if err != nil {
		return DatasourceOutput{}, err
	}
	out := DatasourceOutput{
		URL:        e.Ref.URL(),
		Checksum:   "sha256:" + e.SHA256,
		Path:       e.File,
		Labels:     e.Labels,
		FinishedAt: e.Created.UTC().Format(time.RFC3339),
		BuildID:    e.BuildID,
		Firmware:   e.Firmware,
		SourceURL:  e.SourceURL,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if len(keys) > 0 {
		k, err := client.Verify(ctx, e, keys, c.ImageName, c.Labels)
		if err != nil {
			return DatasourceOutput{}, fmt.Errorf("image %q %s (%s, %s) refused by verify_key: %w",
				c.ImageName, imagemeta.FormatLabels(c.Labels), out.URL, out.Checksum, err)
		}
		log.Printf("[INFO] cloudimg-repository: %s verified with the key %s", out.URL, k.Fingerprint)
		out.KeyFingerprint = k.Fingerprint
	}
	return out, nil
}

// verifyImage checks the Sigstore bundles beside the image find chose
// (out) with keys: the image's signature `<image>.sigstore.json` over the
// SHA-256 the index gives (which the build's iso_checksum then checks
// against the download), then its signed provenance
// `<image>.provenance.sigstore.json` (same subject), which must name name
// and labels. The bundles are found by name, not through index.json. On
// success out.KeyFingerprint is the key that verified.
func verifyImage(ctx context.Context, client *http.Client, loc string, out *DatasourceOutput, name string, labels map[string]string, keys []*signing.PublicKey) error {
	refuse := func(err error) error {
		return fmt.Errorf("image %q %s (%s, %s) refused by verify_key: %w",
			name, imagemeta.FormatLabels(labels), imagemeta.StripURLCredentials(out.URL), out.Checksum, err)
	}
	l, err := imagemeta.ParseLocation(loc)
	if err != nil {
		return refuse(err)
	}
	digest, err := hex.DecodeString(strings.TrimPrefix(out.Checksum, "sha256:"))
	if err != nil || len(digest) != 32 {
		return refuse(fmt.Errorf("no valid sha256 in index.json"))
	}
	read := func(rel string) ([]byte, error) {
		b, err := l.ReadFile(ctx, client, rel)
		if errors.Is(err, imagemeta.ErrNotFound) {
			return nil, fmt.Errorf("it is not signed: %s not found (keys: %s)", l.Show(rel), fingerprints(keys))
		}
		return b, err
	}
	rel := out.Path + ".sigstore.json"
	b, err := read(rel)
	if err != nil {
		return refuse(err)
	}
	v, err := signing.VerifyBlob(b, digest, keys)
	if err != nil {
		return refuse(fmt.Errorf("%s: %w", l.Show(rel), err))
	}
	rel = out.Path + ".provenance.sigstore.json"
	if b, err = read(rel); err != nil {
		return refuse(fmt.Errorf("its provenance: %w", err))
	}
	pv, err := signing.VerifyAttestation(b, digest, keys, signing.PredicateSLSAProvenance1)
	if err != nil {
		return refuse(fmt.Errorf("%s: %w", l.Show(rel), err))
	}
	if err := signing.CheckProvenance(pv.Statement, name, labels); err != nil {
		return refuse(fmt.Errorf("%s: %w", l.Show(rel), err))
	}
	// index.json's created and the provenance's finishedOn are the same
	// moment (the post-processor's finish): another build's validly
	// signed image put in this entry's place shows a different one.
	if fin, err := time.Parse(time.RFC3339, out.FinishedAt); err == nil {
		if signed := signing.ProvenanceFinishedOn(pv.Statement); !signed.IsZero() && !signed.Truncate(time.Second).Equal(fin.Truncate(time.Second)) {
			return refuse(fmt.Errorf("%s: the signed provenance says the build finished at %s, index.json says %s: an image of another build in this entry's place?",
				l.Show(rel), signed.UTC().Format(time.RFC3339), out.FinishedAt))
		}
	}
	log.Printf("[INFO] cloudimg-repository: %s verified with the key %s", out.Path, v.Key)
	out.KeyFingerprint = v.Key.Fingerprint
	return nil
}

// fingerprints lists keys for a message.
func fingerprints(keys []*signing.PublicKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}
