package imagemeta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SchemaVersion is the version of the metadata and index documents this
// package writes. It changes only on incompatible changes; adding optional
// fields keeps it.
const SchemaVersion = 1

// Metadata is the document recorded next to an image: what the image is and
// where it came from. Its JSON encoding (MarshalMetadata) is deterministic.
type Metadata struct {
	// SchemaVersion is SchemaVersion; MarshalMetadata fills it when zero.
	SchemaVersion int `json:"schema_version"`
	// Image describes the image file itself.
	Image Image `json:"image"`
	// Source is the image the build started from, when it had one.
	Source *Source `json:"source,omitempty"`
	// Build tells which Packer build produced the image.
	Build Build `json:"build"`
	// VCS is the state of the repository holding the template, when known.
	VCS *VCS `json:"vcs,omitempty"`
	// Labels are free-form user labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Guest holds facts about the guest collected by another component,
	// recorded as-is (it must be valid JSON).
	Guest json.RawMessage `json:"guest,omitempty"`
	// Sidecars are the other documents written for the image (SBOM,
	// provenance), each with its SHA-256; here their paths are relative to
	// the directory of the metadata file itself. Omitted when none.
	Sidecars []Sidecar `json:"sidecars,omitempty"`
	// Signing says how the image and its documents were signed; omitted
	// when they were not.
	Signing *Signing `json:"signing,omitempty"`
}

// Signing records the key the Sigstore bundles listed in Sidecars were
// made with — never the key itself or its password.
type Signing struct {
	// KeyFingerprint is the lower-case hex SHA-256 of the public key's
	// PKIX DER encoding (the bundles' key hint, there base64-encoded).
	KeyFingerprint string `json:"key_fingerprint"`
}

// Image describes one image file.
type Image struct {
	// Name is the logical image name (several builds of one image share it).
	Name string `json:"name"`
	// Path is the image path relative to the directory of the metadata
	// file, slash-separated.
	Path string `json:"path"`
	// Format is "qcow2" or "raw" (see InspectReader).
	Format string `json:"format"`
	// SizeBytes is the size of the file.
	SizeBytes int64 `json:"size_bytes"`
	// VirtualSizeBytes is the size of the disk the image represents.
	VirtualSizeBytes uint64 `json:"virtual_size_bytes"`
	// Checksums maps algorithm name to lower-case hex digest.
	Checksums map[string]string `json:"checksums"`
	// Firmware is what the image boots with, "bios" or "uefi", when the
	// builder says so.
	Firmware string `json:"firmware,omitempty"`
	// Arch is the architecture the image runs on, in Debian's names
	// ("amd64", "arm64"), when the builder says so.
	Arch string `json:"arch,omitempty"`
}

// Source is the input image of the build.
type Source struct {
	// URL is where the source came from; credentials in it are removed when
	// the document is marshalled.
	URL string `json:"url,omitempty"`
	// Checksum is the expected checksum of the source as given to Packer,
	// e.g. "sha256:…".
	Checksum string `json:"checksum,omitempty"`

	// The fields below are set when the source is an image of an image
	// repository, i.e. the build is chained on a base image this plugin
	// built: they are read from the base image's own metadata document
	// (see DescribeSource) and are absent otherwise.

	// ImageName is the base image's logical name (its image.name).
	ImageName string `json:"image_name,omitempty"`
	// SHA256 is the base image's SHA-256, lower-case hex, as its metadata
	// records it (and as Checksum, when that is a sha256, confirms).
	SHA256 string `json:"sha256,omitempty"`
	// BuildID identifies the build that made the base image: the Packer
	// run UUID its metadata records (build.packer_run_uuid; BuildID).
	BuildID string `json:"build_id,omitempty"`
	// Labels are the base image's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Metadata is the path or URL of the base image's metadata document,
	// with credentials removed.
	Metadata string `json:"metadata,omitempty"`
}

// BuildID is the identifier of the build that produced the image m
// describes: its Packer run UUID (build.packer_run_uuid). The builds of one
// `packer build` run share it; the image name tells them apart. Empty when
// Packer did not give one.
func (m *Metadata) BuildID() string { return m.Build.PackerRunUUID }

// Build identifies the Packer build that produced the image.
type Build struct {
	// Name is the build block name.
	Name string `json:"name,omitempty"`
	// SourceName is the source block name.
	SourceName string `json:"source_name,omitempty"`
	// BuilderType is the builder type, e.g. "qemu".
	BuilderType string `json:"builder_type,omitempty"`
	// PackerRunUUID is the UUID Packer gives each run.
	PackerRunUUID string `json:"packer_run_uuid,omitempty"`
	// StartedAt and FinishedAt are marshalled as RFC 3339 in UTC to the
	// second and omitted when zero.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// PluginVersion is the version of this plugin.
	PluginVersion string `json:"plugin_version,omitempty"`
	// PackerVersion is the version of Packer.
	PackerVersion string `json:"packer_version,omitempty"`
}

// MarshalMetadata returns the canonical JSON encoding of m: two-space
// indentation, map keys sorted, no HTML escaping, a trailing newline, times
// in UTC to the second, credentials stripped from Source.URL and VCS.Remote. The same
// Metadata always gives the same bytes. m itself is not modified.
func MarshalMetadata(m *Metadata) ([]byte, error) {
	if m == nil {
		return nil, errors.New("imagemeta: nil metadata")
	}
	c := *m
	if c.SchemaVersion == 0 {
		c.SchemaVersion = SchemaVersion
	}
	if c.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("imagemeta: cannot write metadata schema version %d (this plugin writes %d)",
			c.SchemaVersion, SchemaVersion)
	}
	c.Build.StartedAt = normTime(c.Build.StartedAt)
	c.Build.FinishedAt = normTime(c.Build.FinishedAt)
	if c.Source != nil {
		s := *c.Source
		s.URL = StripURLCredentials(s.URL)
		s.Metadata = StripURLCredentials(s.Metadata)
		c.Source = &s
	}
	if c.VCS != nil {
		v := *c.VCS
		v.Remote = StripURLCredentials(v.Remote)
		c.VCS = &v
	}
	if len(c.Guest) > 0 && !json.Valid(c.Guest) {
		return nil, errors.New("imagemeta: guest facts are not valid JSON")
	}
	return marshalCanonical(&c)
}

// normTime converts t to UTC whole seconds (dropping the monotonic reading)
// so that the document reads "2006-01-02T15:04:05Z" and equal instants
// marshal identically.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

func marshalCanonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil { // Encode appends the newline
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadMetadata reads and decodes a metadata file, rejecting schema versions
// other than SchemaVersion.
func ReadMetadata(path string) (*Metadata, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseMetadata(path, b)
}

// WriteMetadata writes MarshalMetadata(m) to path atomically: the bytes go
// to a temporary file in the same directory, which is synced and renamed
// over path, so readers see the old document or the new one, never a part.
// The file gets mode 0644.
func WriteMetadata(path string, m *Metadata) error {
	b, err := MarshalMetadata(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o644)
}

// WriteFile writes data to path atomically, like WriteMetadata: readers see
// the old contents or the new, never a part. The file gets mode 0644.
func WriteFile(path string, data []byte) error {
	return writeFileAtomic(path, data, 0o644)
}

// DescribeImage fills an Image for the file at imagePath from one read of
// it: size and checksums (HashFile with algos), format and virtual size
// (InspectReader, applied to the file's first cluster as the hashing read
// passes it), and Path relative to the directory of metadataPath. Name is
// left for the caller. A file with the qcow2 magic and a broken header is an
// error wrapping ErrMalformedQCOW2.
func DescribeImage(ctx context.Context, imagePath, metadataPath string, algos []string) (Image, error) {
	// A qcow2 header lies within the first cluster, at most 2 MiB.
	head := make([]byte, 1<<qcow2MaxCluster)
	sums, size, n, err := hashFileHead(ctx, imagePath, algos, head)
	if err != nil {
		return Image{}, err
	}
	format, vsize, err := InspectReader(bytes.NewReader(head[:n]), size)
	if err != nil {
		return Image{}, fmt.Errorf("imagemeta: %s: %w", imagePath, err)
	}
	rel, err := RelativePath(filepath.Dir(metadataPath), imagePath)
	if err != nil {
		return Image{}, err
	}
	return Image{
		Path:             rel,
		Format:           format,
		SizeBytes:        size,
		VirtualSizeBytes: vsize,
		Checksums:        sums,
	}, nil
}

// RelativePath returns target relative to base, slash-separated, after
// making both absolute. Unlike the repository paths, the result may start
// with "..".
func RelativePath(base, target string) (string, error) {
	ab, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	at, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(ab, at)
	if err != nil {
		return "", fmt.Errorf("imagemeta: cannot express %s relative to %s: %w", target, base, err)
	}
	return filepath.ToSlash(rel), nil
}
