//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config,DatasourceOutput
//go:generate go tool packer-sdc struct-markdown

// Package image is the cloudimg-image data source: it resolves a
// distribution release to one concrete, pinned cloud image (dated URL,
// checksum, serial) from the distribution's published indexes. The work is
// done by internal/imagesource; this is the Packer layer.
package image

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/httpclient"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagesource"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/unknown"
)

// DefaultTimeout bounds the whole resolution (every index read) unless
// `timeout` says otherwise.
const DefaultTimeout = 5 * time.Minute

// Config is the configuration of the cloudimg-image data source: which
// release to resolve, and where to read the indexes.
type Config struct {
	// The distribution: `ubuntu` or `debian`.
	Distribution string `mapstructure:"distribution" required:"true"`
	// The release: a codename (`noble`, `jammy`, `questing`; `bookworm`,
	// `trixie`, `bookworm-backports`) or a version number (`24.04`, `12`).
	// A codename this plugin does not know yet is looked up in the indexes
	// as it is.
	Release string `mapstructure:"release" required:"true"`
	// The architecture: `amd64` (default) or `arm64`; `x86_64` and
	// `aarch64` are accepted too. It chooses the image only: the
	// `cloudimg-kvm` builder's own `arch` (default: the host's) decides what
	// machine boots it, so set both, e.g. from one variable.
	Arch string `mapstructure:"arch"`
	// The serial: `current` (default) or its synonym `latest` for the
	// newest one in the index, or an exact serial to pin, such as `20241004`
	// (Ubuntu) or `20241004-1894` (Debian). Either way the outputs name a
	// dated serial, never a moving alias.
	Serial string `mapstructure:"serial"`
	// The kind of image. Ubuntu: `server` (default, the server cloud image
	// `ubuntu-<version>-server-cloudimg-<arch>.img`) or `disk-kvm`
	// (`…-<arch>-disk-kvm.img`, the same system with the linux-kvm kernel;
	// not published for every architecture). Debian: `genericcloud`
	// (default, `debian-<n>-genericcloud-<arch>-<serial>.qcow2`, without the
	// drivers for physical hardware) or `generic` (all drivers).
	Variant string `mapstructure:"variant"`
	// Where the indexes are: an `https://` or `http://` URL of a mirror,
	// a `file://` URL, or a local directory (relative to where Packer runs),
	// laid out like the official mirror. Default
	// `https://cloud-images.ubuntu.com/releases/` for Ubuntu (its
	// `streams/v1/com.ubuntu.cloud:released:download.json`; without it,
	// `<release>/release-<serial>/SHA256SUMS`) and
	// `https://cloud.debian.org/images/cloud/` for Debian
	// (`<release>/<serial>/SHA512SUMS`, the serials listed in
	// `<release>/`). Image URLs are on the same mirror.
	BaseURL string `mapstructure:"base_url"`
	// How long resolving may take, all index reads included. Default `5m`.
	Timeout time.Duration `mapstructure:"timeout"`
	// The image to output when the mirror cannot be reached (no network,
	// the timeout, a proxy answering 502, 503 or 504): typically the last
	// pinned URL, so that an offline build can still use the image in
	// Packer's cache. Set together with `fallback_checksum`. Never used when
	// the mirror answers: a release or serial it lacks, or a malformed
	// index, stays an error.
	FallbackURL string `mapstructure:"fallback_url"`
	// The checksum output with `fallback_url`, in a form `iso_checksum`
	// accepts. For offline builds, the literal `sha256:<hex>` or
	// `sha512:<hex>` the data source output online: Packer's download cache
	// is keyed by it, and a `file:<url>` checksum needs the network.
	FallbackChecksum string `mapstructure:"fallback_checksum"`
	// The serial output with `fallback_url`. Default: empty.
	FallbackSerial string `mapstructure:"fallback_serial"`
}

// DatasourceOutput is what the data source resolves to.
type DatasourceOutput struct {
	// The image's dated, immutable URL, for `iso_url`. On a local mirror, a
	// `file://` URL. With the fallback: `fallback_url`.
	URL string `mapstructure:"url"`
	// Its checksum as `iso_checksum` wants it: `sha256:<hex>` (Ubuntu) or
	// `sha512:<hex>` (Debian), read from the index (`fallback_checksum`
	// when the fallback is used).
	Checksum string `mapstructure:"checksum"`
	// The serial resolved, e.g. `20241004` or `20241004-1894`: pass it as
	// `serial` to pin this exact image later (`fallback_serial` when the
	// fallback is used).
	Serial string `mapstructure:"serial"`
	// The image's file name, e.g. `ubuntu-24.04-server-cloudimg-amd64.img`.
	Name string `mapstructure:"name"`
	// The URL of the serial's `SHA256SUMS` or `SHA512SUMS`, for
	// `iso_checksum = "file:<checksum_url>"` or a signature check (with the
	// fallback: the URL of a `file:` `fallback_checksum`, else empty).
	ChecksumURL string `mapstructure:"checksum_url"`
}

// Datasource is the cloudimg-image data source.
type Datasource struct {
	config Config
	// client fetches the indexes; nil: a client that honours the proxy
	// environment variables.
	client *http.Client
}

// ConfigSpec returns the HCL2 spec of Config.
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// OutputSpec returns the HCL2 spec of DatasourceOutput.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	return (&DatasourceOutput{}).FlatMapstructure().HCL2Spec()
}

// query is the configuration as an imagesource query, defaults filled.
func (d *Datasource) query() imagesource.Query {
	c := d.config
	return imagesource.Query{
		Distribution: c.Distribution, Release: c.Release, Arch: c.Arch,
		Serial: c.Serial, Variant: c.Variant, BaseURL: c.BaseURL,
	}.Normalize()
}

// Configure decodes and validates the configuration; every error names its
// option. Nothing is fetched.
func (d *Datasource) Configure(raws ...interface{}) error {
	if err := config.Decode(&d.config, &config.DecodeOpts{PluginType: "cloudimg-image"}, raws...); err != nil {
		return err
	}
	c := &d.config
	var errs *packersdk.MultiError
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("timeout: must be positive, not %s", c.Timeout))
	}
	if (c.FallbackURL == "") != (c.FallbackChecksum == "") {
		if c.FallbackURL == "" {
			errs = packersdk.MultiErrorAppend(errs, errors.New("fallback_url: required with fallback_checksum"))
		} else {
			errs = packersdk.MultiErrorAppend(errs, errors.New("fallback_checksum: required with fallback_url"))
		}
	}
	if c.FallbackSerial != "" && c.FallbackURL == "" {
		errs = packersdk.MultiErrorAppend(errs, errors.New("fallback_serial: only used with fallback_url"))
	}
	notKnown := map[string]bool{
		"distribution": c.Distribution == unknown.Value, "release": c.Release == unknown.Value,
		"arch": c.Arch == unknown.Value, "serial": c.Serial == unknown.Value,
		"variant": c.Variant == unknown.Value, "base_url": c.BaseURL == unknown.Value,
	}
	if err := d.query().Validate(); err != nil {
		for _, e := range unjoin(err) {
			var fe *imagesource.FieldError
			if errors.As(e, &fe) && (notKnown[fe.Field] || notKnown["distribution"]) {
				continue // checked when the value is known, in Execute
			}
			errs = packersdk.MultiErrorAppend(errs, e)
		}
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Execute resolves the image.
func (d *Datasource) Execute() (cty.Value, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.config.Timeout)
	defer cancel()
	client := d.client
	if client == nil {
		client = httpclient.New()
	}
	q := d.query()
	img, err := imagesource.Resolve(ctx, q, client)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (timeout %s)", err, d.config.Timeout)
		}
		if d.config.FallbackURL == "" || !errors.Is(err, imagesource.ErrUnreachable) {
			return cty.NullVal(cty.EmptyObject), err
		}
		log.Printf("[WARN] cloudimg-image: %v; using fallback_url %s", err, d.config.FallbackURL)
		return hcl2helper.HCL2ValueFromConfig(d.fallback(), d.OutputSpec()), nil
	}
	log.Printf("[INFO] cloudimg-image: %s resolved to serial %s: %s (%s)", q, img.Serial, img.URL, img.Checksum)
	out := DatasourceOutput{
		URL: img.URL, Checksum: img.Checksum, Serial: img.Serial,
		Name: img.Name, ChecksumURL: img.ChecksumURL,
	}
	return hcl2helper.HCL2ValueFromConfig(out, d.OutputSpec()), nil
}

// fallback is the output made of the fallback_* options.
func (d *Datasource) fallback() DatasourceOutput {
	c := d.config
	out := DatasourceOutput{URL: c.FallbackURL, Checksum: c.FallbackChecksum, Serial: c.FallbackSerial}
	name := c.FallbackURL
	if u, err := url.Parse(c.FallbackURL); err == nil && u.Path != "" {
		name = u.Path
	}
	out.Name = path.Base(name)
	if sums, ok := strings.CutPrefix(c.FallbackChecksum, "file:"); ok {
		out.ChecksumURL = sums
	}
	return out
}
