package ociregistry

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layouts of a pushed image.
const (
	// LayoutContainerDisk is an OCI image whose one uncompressed tar layer
	// holds `disk/<file>` owned by 107:107 (the qemu user of KubeVirt's
	// virt-launcher): what KubeVirt's `containerDisk` volume and CDI's
	// `registry` import read (KubeVirt docs, "Container disk";
	// CDI doc/image-from-registry.md: the first file under /disk).
	LayoutContainerDisk = "containerdisk"
	// LayoutArtifact is an OCI artifact (image-spec v1.1 "artifactType")
	// whose one blob is the disk file itself, titled with its file name, as
	// `oras pull` writes it.
	LayoutArtifact = "artifact"
)

// Media and artifact types. No registered media type for a qcow2 disk
// exists (IANA has none; QEMU defines none), so the artifact layout uses
// this project's vendor tree, with the disk format in the layer's media
// type so that a reader knows it without pulling.
const (
	// ArtifactTypeDisk is the artifactType of LayoutArtifact manifests.
	ArtifactTypeDisk = "application/vnd.packer-cloudimg.disk.v1"
	// MediaTypeDiskQcow2 and MediaTypeDiskRaw are the layer media types of
	// LayoutArtifact: the disk file as it is, uncompressed (a qcow2 is
	// compressed inside already).
	MediaTypeDiskQcow2 = "application/vnd.packer-cloudimg.disk.qcow2"
	MediaTypeDiskRaw   = "application/vnd.packer-cloudimg.disk.raw"
	// ArtifactTypeCycloneDX and ArtifactTypeSPDX are the artifactTypes
	// trivy and other scanners look for when they list a manifest's
	// referrers for an SBOM.
	ArtifactTypeCycloneDX = "application/vnd.cyclonedx+json"
	ArtifactTypeSPDX      = "application/spdx+json"
	// ArtifactTypeInToto is the artifactType (and layer media type) of an
	// in-toto statement (the provenance), as the in-toto attestation spec
	// names its JSON envelope-less statement.
	ArtifactTypeInToto = "application/vnd.in-toto+json"
)

// Annotation keys this package writes on manifests (and on the descriptors
// of an index). Besides the org.opencontainers.image.* keys of the image
// spec (annotations.md): created, title (on the disk layer), revision,
// source.
const (
	annotationPrefix = "io.github.packer-cloudimg."
	// AnnotationName is the image's logical name (the metadata's
	// image.name, the post-processor's image_name).
	AnnotationName = annotationPrefix + "image.name"
	// AnnotationSHA256 is the disk file's SHA-256, lower-case hex: what
	// `iso_checksum` checks after a pull, whatever the layout.
	AnnotationSHA256 = annotationPrefix + "image.sha256"
	// AnnotationFile is the disk file's name (also `disk/<file>` in a
	// containerdisk).
	AnnotationFile = annotationPrefix + "image.file"
	// AnnotationFormat is "qcow2" or "raw".
	AnnotationFormat = annotationPrefix + "image.format"
	// AnnotationArch is the architecture in Debian's terms ("amd64",
	// "arm64"); also the manifest's platform in an index.
	AnnotationArch = annotationPrefix + "image.arch"
	// AnnotationFirmware is "bios" or "uefi" when known.
	AnnotationFirmware = annotationPrefix + "image.firmware"
	// AnnotationBuildID is the Packer run UUID of the build.
	AnnotationBuildID = annotationPrefix + "build.id"
	// AnnotationSourceURL is the URL of the image the build started from
	// (credentials removed).
	AnnotationSourceURL = annotationPrefix + "source.url"
	// AnnotationLabelPrefix prefixes each label: label `stage = prod` is
	// the annotation `io.github.packer-cloudimg.label.stage: prod`.
	AnnotationLabelPrefix = annotationPrefix + "label."
)

// containerDiskOwner is the uid and gid KubeVirt runs QEMU as (107, "qemu"),
// which must be able to read the disk.
const containerDiskOwner = 107

// Image is one disk image to push and what is known of it.
type Image struct {
	// Path is the disk file.
	Path string
	// SHA256 is its SHA-256 (lower-case hex) when already known (from its
	// metadata); otherwise the push computes it. The registry checks every
	// blob's digest, so a wrong value fails the push.
	SHA256 string
	// Name is the logical image name; required.
	Name string
	// Labels are the image's labels.
	Labels map[string]string
	// Arch is "amd64" or "arm64" (Debian's names); required.
	Arch string
	// Format is "qcow2" or "raw".
	Format string
	// Firmware is "bios", "uefi" or "".
	Firmware string
	// Created is when the build finished: the created annotation, the image
	// config's created time and the tar entries' times, so that the same
	// image pushed twice has the same digests.
	Created time.Time
	// BuildID is the Packer run UUID, or "".
	BuildID string
	// SourceURL is the URL of the image the build started from, or "".
	SourceURL string
	// Revision and VCSSource are the template's git commit and remote URI
	// (org.opencontainers.image.revision, .source), or "".
	Revision, VCSSource string
}

// Annotations are the manifest annotations of im (see the Annotation*
// constants); empty values are left out.
func (im *Image) Annotations(sha string) map[string]string {
	a := map[string]string{
		ocispec.AnnotationCreated:  im.Created.UTC().Format(time.RFC3339),
		AnnotationName:             im.Name,
		AnnotationSHA256:           sha,
		AnnotationFile:             fileName(im.Path),
		AnnotationFormat:           im.Format,
		AnnotationArch:             im.Arch,
		AnnotationFirmware:         im.Firmware,
		AnnotationBuildID:          im.BuildID,
		AnnotationSourceURL:        im.SourceURL,
		ocispec.AnnotationRevision: im.Revision,
		ocispec.AnnotationSource:   im.VCSSource,
	}
	for k, v := range im.Labels {
		a[AnnotationLabelPrefix+k] = v
	}
	for k, v := range a {
		if v == "" {
			delete(a, k)
		}
	}
	return a
}

// fileName is the base name of a slash- or OS-separated path.
func fileName(p string) string {
	if i := strings.LastIndexAny(p, `/`+string(os.PathSeparator)); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ociArch maps Debian's architecture names to the OCI platform's (GOARCH).
var ociArch = map[string]string{"amd64": "amd64", "arm64": "arm64"}

// Platform is the OCI platform of a linux image of the Debian architecture
// arch.
func Platform(arch string) (*ocispec.Platform, error) {
	a, ok := ociArch[arch]
	if !ok {
		return nil, fmt.Errorf("architecture %q: want amd64 or arm64", arch)
	}
	return &ocispec.Platform{OS: "linux", Architecture: a}, nil
}

// layerSource is a blob made of an in-memory head, a file and an
// in-memory tail, read afresh each time (once to hash, once to send).
type layerSource struct {
	head []byte
	file string
	size int64 // of the file
	tail []byte
}

func (l *layerSource) Size() int64 { return int64(len(l.head)) + l.size + int64(len(l.tail)) }

// Open returns the blob's bytes; the caller closes it.
func (l *layerSource) Open() (io.ReadCloser, error) {
	f, err := os.Open(l.file)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != l.size {
		f.Close()
		return nil, fmt.Errorf("%s changed size while being pushed (%d, was %d bytes)", l.file, st.Size(), l.size)
	}
	if len(l.head) == 0 && len(l.tail) == 0 {
		// The file itself, so that an HTTP upload can use sendfile(2);
		// the stall guard follows its offset (see stallTransport).
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(l.head), io.LimitReader(f, l.size), bytes.NewReader(l.tail)), f}, nil
}

// containerDiskLayer is the tar stream of a containerdisk layer: the
// directory `disk/` and the file `disk/<name>`, both owned by 107:107, the
// file mode 0444 and the directory 0555 (read-only, readable by all), every
// time mtime. Only the headers and the trailer are built in memory; the
// file's bytes are streamed. The same inputs give the same bytes.
func containerDiskLayer(path, name string, size int64, mtime time.Time) (*layerSource, error) {
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	mtime = mtime.UTC().Truncate(time.Second)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: containerDiskOwner, Gid: containerDiskOwner, ModTime: mtime, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: "disk/" + name, Mode: 0o444, Size: size, Uid: containerDiskOwner, Gid: containerDiskOwner, ModTime: mtime, Format: tar.FormatPAX},
	}
	for _, h := range hdrs {
		// FormatPAX with no PAX records needed writes plain USTAR headers
		// for these fields; larger sizes get a PAX size record.
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header for %s: %w", h.Name, err)
		}
	}
	// The file's data is padded to 512-byte blocks; two zero blocks end
	// the archive (POSIX ustar).
	pad := (512 - size%512) % 512
	tail := make([]byte, pad+1024)
	return &layerSource{head: head.Bytes(), file: path, size: size, tail: tail}, nil
}

// hashSource reads src once and returns its digest, and the SHA-256 of the
// file part alone (lower-case hex).
func hashSource(src *layerSource) (blob digest.Digest, file string, err error) {
	rc, err := src.Open()
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	whole, part := sha256.New(), sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyN(whole, rc, int64(len(src.head))); err != nil {
		return "", "", err
	}
	if _, err := io.CopyBuffer(io.MultiWriter(whole, part), io.LimitReader(rc, src.size), buf); err != nil {
		return "", "", fmt.Errorf("reading %s: %w", src.file, err)
	}
	if _, err := io.Copy(whole, rc); err != nil {
		return "", "", err
	}
	return digest.NewDigestFromBytes(digest.SHA256, whole.Sum(nil)), hex.EncodeToString(part.Sum(nil)), nil
}

// imageConfig is the OCI image config of a containerdisk: os linux, the
// platform's architecture, created, one diff_id (the uncompressed layer's
// digest, which here is the layer's digest).
func imageConfig(p *ocispec.Platform, created time.Time, diffID digest.Digest) ([]byte, error) {
	c := created.UTC().Truncate(time.Second)
	cfg := ocispec.Image{
		Created:  &c,
		Platform: *p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []ocispec.History{{Created: &c, CreatedBy: "packer-plugin-cloudimg cloudimg-oci (containerdisk)"}},
	}
	return json.Marshal(cfg)
}

// manifest marshals an OCI image manifest.
func manifest(artifactType string, config ocispec.Descriptor, layers []ocispec.Descriptor, subject *ocispec.Descriptor, annotations map[string]string) ([]byte, ocispec.Descriptor, error) {
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       config,
		Layers:       layers,
		Subject:      subject,
		Annotations:  annotations,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	return b, descriptorOf(ocispec.MediaTypeImageManifest, b), nil
}

// descriptorOf describes in-memory content.
func descriptorOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// tagUnsafe matches what a tag may not contain (distribution spec:
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}).
var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// BuildTag is the immutable tag of one build of one image:
// `<name>-<arch>-<created, 20060102T150405Z>-<first 12 hex of the disk's
// sha256>`, the name's characters a tag may not hold replaced by `-`, and
// the name shortened so that the tag stays within 128 characters. Sorted as
// strings, the build tags of one name and arch are in time order.
func BuildTag(name, arch string, created time.Time, sha string) string {
	n := strings.Trim(tagUnsafe.ReplaceAllString(name, "-"), ".-")
	if n == "" {
		n = "image"
	}
	suffix := fmt.Sprintf("-%s-%s-%.12s", arch, created.UTC().Format("20060102T150405Z"), sha)
	if max := 128 - len(suffix); len(n) > max {
		n = n[:max]
	}
	return n + suffix
}

// ValidTag reports whether t is a valid tag (see tagUnsafe).
func ValidTag(t string) bool {
	return t != "" && len(t) <= 128 && !tagUnsafe.MatchString(t) && t[0] != '.' && t[0] != '-'
}

// labelsOf returns the labels recorded in annotations a.
func labelsOf(a map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		if l, ok := strings.CutPrefix(k, AnnotationLabelPrefix); ok {
			out[l] = v
		}
	}
	return out
}
