// Package imagesource resolves a distribution release ("ubuntu noble amd64,
// newest") to one concrete, immutable cloud image: its dated URL, its checksum
// and its serial, read from the distribution's own published indexes.
//
//   - Ubuntu: the simplestreams product index
//     (streams/v1/com.ubuntu.cloud:released:download.json); a mirror without it
//     is read like Debian, from the release's directory listing of
//     release-<serial>/ directories and each serial's SHA256SUMS.
//   - Debian: the release's directory listing of <serial>/ directories
//     (YYYYMMDD-NNNN; the moving latest/ alias is never used) and the serial's
//     SHA512SUMS.
//
// Indexes are fetched over HTTP(S) or read from a local directory (a plain
// path or a file:// URL) laid out like the mirror. The package knows nothing
// of Packer: the cloudimg-image data source is its Packer layer.
package imagesource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Distributions.
const (
	Ubuntu = "ubuntu"
	Debian = "debian"
)

// Architectures.
const (
	AMD64 = "amd64"
	ARM64 = "arm64"
)

// SerialCurrent asks for the newest serial in the index; SerialLatest is its
// synonym. Neither is ever a URL component: the result names a dated serial.
const (
	SerialCurrent = "current"
	SerialLatest  = "latest"
)

// Default mirrors: the directories that hold the indexes.
const (
	DefaultUbuntuBaseURL = "https://cloud-images.ubuntu.com/releases/"
	DefaultDebianBaseURL = "https://cloud.debian.org/images/cloud/"
)

// Query is what to resolve. Empty fields take their defaults: Arch amd64,
// Serial current, Variant the distribution's first variant, BaseURL the
// distribution's official mirror.
type Query struct {
	Distribution string // ubuntu or debian
	Release      string // codename (noble, bookworm, bookworm-backports) or version number (24.04, 12)
	Arch         string // amd64 or arm64 (x86_64 and aarch64 are accepted too)
	Serial       string // current, latest, or an exact serial (20241004, 20241004-1894)
	Variant      string // ubuntu: server, disk-kvm; debian: genericcloud, generic
	BaseURL      string // http(s) URL, file:// URL or local directory of a mirror
}

// Image is a resolved image.
type Image struct {
	URL         string // dated, immutable URL of the image
	Checksum    string // "sha256:<hex>" (ubuntu) or "sha512:<hex>" (debian)
	Serial      string // the serial resolved, e.g. 20241004 or 20241004-1894
	Name        string // the image's file name
	ChecksumURL string // the serial's SHA256SUMS or SHA512SUMS
}

// variant is one kind of image of a distribution.
type variant struct {
	name string
	// ftype is the simplestreams item type (ubuntu).
	ftype string
	// suffix follows the architecture in the ubuntu file name, e.g.
	// ubuntu-24.04-server-cloudimg-amd64<suffix>.img.
	suffix string
}

var variants = map[string][]variant{
	Ubuntu: {
		{name: "server", ftype: "disk1.img"},
		{name: "disk-kvm", ftype: "disk-kvm.img", suffix: "-disk-kvm"},
	},
	Debian: {
		{name: "genericcloud"},
		{name: "generic"},
	},
}

// Distributions lists the distributions Resolve knows.
func Distributions() []string { return []string{Ubuntu, Debian} }

// Arches lists the architectures Resolve accepts.
func Arches() []string { return []string{AMD64, ARM64} }

// Variants lists the variants of a distribution, the default first; nil for
// an unknown distribution.
func Variants(distribution string) []string {
	var names []string
	for _, v := range variants[distribution] {
		names = append(names, v.name)
	}
	return names
}

func findVariant(distribution, name string) (variant, bool) {
	for _, v := range variants[distribution] {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

// DefaultBaseURL is the official mirror of a distribution.
func DefaultBaseURL(distribution string) string {
	switch distribution {
	case Ubuntu:
		return DefaultUbuntuBaseURL
	case Debian:
		return DefaultDebianBaseURL
	}
	return ""
}

var archAliases = map[string]string{
	AMD64: AMD64, "x86_64": AMD64, "x86-64": AMD64,
	ARM64: ARM64, "aarch64": ARM64,
}

var (
	ubuntuSerialRE = regexp.MustCompile(`^[0-9]{8}(\.[0-9]{1,4})?$`)
	debianSerialRE = regexp.MustCompile(`^[0-9]{8}-[0-9]{1,8}$`)
	releaseRE      = regexp.MustCompile(`^([a-z][a-z0-9]{0,31}(-backports)?|[0-9]{1,2}(\.[0-9]{2})?)$`)
)

// isCurrent tells whether a serial asks for the newest one.
func isCurrent(serial string) bool {
	return serial == "" || serial == SerialCurrent || serial == SerialLatest
}

// Normalize fills the defaults of q and canonicalises its values (lower
// case, arch aliases). It does not validate: see Validate.
func (q Query) Normalize() Query {
	q.Distribution = strings.ToLower(strings.TrimSpace(q.Distribution))
	q.Release = strings.ToLower(strings.TrimSpace(q.Release))
	q.Arch = strings.ToLower(strings.TrimSpace(q.Arch))
	q.Serial = strings.TrimSpace(q.Serial)
	q.Variant = strings.ToLower(strings.TrimSpace(q.Variant))
	q.BaseURL = strings.TrimSpace(q.BaseURL)
	if q.Arch == "" {
		q.Arch = AMD64
	}
	if a, ok := archAliases[q.Arch]; ok {
		q.Arch = a
	}
	if strings.EqualFold(q.Serial, SerialCurrent) || strings.EqualFold(q.Serial, SerialLatest) || q.Serial == "" {
		q.Serial = SerialCurrent
	}
	if q.Variant == "" {
		if vs := Variants(q.Distribution); len(vs) > 0 {
			q.Variant = vs[0]
		}
	}
	if q.BaseURL == "" {
		q.BaseURL = DefaultBaseURL(q.Distribution)
	}
	return q
}

// FieldError is an invalid Query field. Field is the option's name as the
// data source spells it (distribution, release, arch, serial, variant,
// base_url).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks a normalized query without touching the network. It
// returns every problem, each a *FieldError, joined.
func (q Query) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	knownDist := false
	switch q.Distribution {
	case "":
		add("distribution", "required: one of %s", quoteList(Distributions()))
	case Ubuntu, Debian:
		knownDist = true
	default:
		add("distribution", "unknown distribution %q; supported: %s", q.Distribution, quoteList(Distributions()))
	}
	switch {
	case q.Release == "":
		add("release", "required: a codename such as %s", releaseExamples(q.Distribution))
	case !releaseRE.MatchString(q.Release):
		add("release", "%q is not a release codename or version number (e.g. %s)", q.Release, releaseExamples(q.Distribution))
	case knownDist:
		if _, err := lookupRelease(q.Distribution, q.Release); err != nil {
			add("release", "%v", err)
		}
	}
	if _, ok := archAliases[q.Arch]; !ok || q.Arch != archAliases[q.Arch] {
		add("arch", "unknown architecture %q; supported: %s", q.Arch, quoteList(Arches()))
	}
	if knownDist {
		if _, ok := findVariant(q.Distribution, q.Variant); !ok {
			add("variant", "%q is not one of the %s variants: %s", q.Variant, q.Distribution, quoteList(Variants(q.Distribution)))
		}
		if !isCurrent(q.Serial) {
			switch q.Distribution {
			case Ubuntu:
				if !ubuntuSerialRE.MatchString(q.Serial) {
					add("serial", "%q is not an ubuntu serial (YYYYMMDD or YYYYMMDD.N, e.g. 20241004), nor %q/%q", q.Serial, SerialCurrent, SerialLatest)
				}
			case Debian:
				if !debianSerialRE.MatchString(q.Serial) {
					add("serial", "%q is not a debian serial (YYYYMMDD-NNNN, e.g. 20241004-1894), nor %q/%q", q.Serial, SerialCurrent, SerialLatest)
				}
			}
		}
	}
	if q.BaseURL != "" || knownDist {
		if _, _, err := parseBase(q.BaseURL); err != nil {
			add("base_url", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// String describes the query for error messages, e.g.
// `ubuntu noble amd64 server, serial current, from https://…`.
func (q Query) String() string {
	var what []string
	for _, s := range []string{q.Distribution, q.Release, q.Arch, q.Variant} {
		if s != "" {
			what = append(what, s)
		}
	}
	return fmt.Sprintf("%s, serial %s, from %s", strings.Join(what, " "), q.Serial, q.BaseURL)
}

// Resolve finds the image q asks for in the indexes of q.BaseURL. client
// fetches http(s) URLs; nil means the shared client of internal/httpclient (bounded waits). Every error names the
// query and the URL or file that was read.
func Resolve(ctx context.Context, q Query, client *http.Client) (*Image, error) {
	q = q.Normalize()
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	src, err := newSource(q.BaseURL, client)
	if err != nil {
		return nil, fmt.Errorf("%s: base_url: %w", q, err)
	}
	var img *Image
	switch q.Distribution {
	case Ubuntu:
		img, err = resolveUbuntu(ctx, src, q)
	case Debian:
		img, err = resolveDebian(ctx, src, q)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	return img, nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
