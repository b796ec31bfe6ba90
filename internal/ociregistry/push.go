package ociregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
)

// Document is a file pushed as a referrer of an image's manifest (OCI 1.1
// `subject`): its SBOM or provenance.
type Document struct {
	// Path is the file.
	Path string
	// ArtifactType is the referrer manifest's artifactType and its one
	// layer's media type, e.g. ArtifactTypeCycloneDX.
	ArtifactType string
}

// Push is what to push: one image, its documents, and its tags.
type Push struct {
	Image Image
	// Layout is LayoutContainerDisk or LayoutArtifact.
	Layout string
	// Documents become referrers of the image's manifest.
	Documents []Document
	// Tags name the image (or, see Pushed.Index, an index of it and its
	// other platforms) once everything else is in place.
	Tags []string
	// Attest, when set, is called for the image manifest once it is in the
	// registry, and for each index the push writes before a tag names it;
	// what it returns is attached to that manifest as referrers (the
	// signatures and attestations that `cosign verify` and `cosign
	// verify-attestation` read). An error fails the push before any tag
	// moves.
	Attest func(ctx context.Context, subject ocispec.Descriptor) ([]Attachment, error)
	// Progress, when set, is told what happens, one line at a time.
	Progress func(string)
}

// Attachment is in-memory content attached as a referrer.
type Attachment struct {
	// Data is the content: the referrer manifest's one layer.
	Data []byte
	// ArtifactType is the manifest's artifactType and the layer's media
	// type, e.g. "application/vnd.dev.sigstore.bundle.v0.3+json".
	ArtifactType string
	// Title is the layer's org.opencontainers.image.title (a file name).
	Title string
	// Annotations go on the referrer manifest (and so, in the referrers
	// list, on its descriptor), besides org.opencontainers.image.created.
	Annotations map[string]string
}

// Pushed is the outcome of a push.
type Pushed struct {
	// Manifest is the image's manifest; Ref names it by digest.
	Manifest ocispec.Descriptor
	Ref      Reference
	// SHA256 is the disk file's SHA-256.
	SHA256 string
	// BuildTag is the immutable per-build tag (BuildTag).
	BuildTag string
	// Tags are the tags set, BuildTag first.
	Tags []string
	// Referrers are the documents' manifests.
	Referrers []ocispec.Descriptor
	// Index is, per tag of Push.Tags, the index that tag names when the
	// tag holds this build's image for several platforms; absent when it
	// names Manifest itself.
	Index map[string]ocispec.Descriptor
	// BlobsSent and BlobsSkipped count blobs uploaded and those the
	// registry had already.
	BlobsSent, BlobsSkipped int
}

// Push pushes p: blobs first (each only if the registry lacks it), then the
// image manifest, then its referrers, then the tags — so an interrupted
// push leaves every tag as it was, and pushing again sends only what is
// missing. With the same image, documents and tags, the digests are the
// same each time.
//
// When a tag already names a manifest (or an index) of the same image name
// and the same build id for another architecture, the tag is set to an OCI
// image index of both (a multi-platform image). Otherwise the tag is moved
// to the new manifest. Registries offer no compare-and-set: two pushes of
// one tag at the same moment from different machines may lose one
// platform; this process serialises its own pushes to a tag.
func (c *Client) Push(ctx context.Context, p Push) (*Pushed, error) {
	im := p.Image
	say := func(format string, a ...any) {
		if p.Progress != nil {
			p.Progress(fmt.Sprintf(format, a...))
		}
	}
	if im.Name == "" {
		return nil, errors.New("the image has no name")
	}
	platform, err := Platform(im.Arch)
	if err != nil {
		return nil, err
	}
	for _, t := range p.Tags {
		if !ValidTag(t) {
			return nil, fmt.Errorf("tag %q: a tag is 1-128 of A-Z a-z 0-9 _ . - and starts with a letter, digit or _", t)
		}
	}
	st, err := os.Stat(im.Path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", im.Path)
	}
	out := &Pushed{Index: map[string]ocispec.Descriptor{}}

	// The disk's blob and the manifest's config.
	var layer ocispec.Descriptor
	var layerSrc *layerSource
	var config ocispec.Descriptor
	var configBytes []byte
	var artifactType string
	name := fileName(im.Path)
	switch p.Layout {
	case LayoutArtifact:
		layerSrc = &layerSource{file: im.Path, size: st.Size()}
		sha := im.SHA256
		if sha == "" {
			say("Hashing %s...", im.Path)
			_, s, err := hashSource(layerSrc)
			if err != nil {
				return nil, err
			}
			sha = s
		}
		out.SHA256 = sha
		mt := MediaTypeDiskQcow2
		if im.Format == "raw" {
			mt = MediaTypeDiskRaw
		}
		layer = ocispec.Descriptor{
			MediaType:   mt,
			Digest:      digest.NewDigestFromEncoded(digest.SHA256, sha),
			Size:        st.Size(),
			Annotations: map[string]string{ocispec.AnnotationTitle: name},
		}
		artifactType = ArtifactTypeDisk
		config, configBytes = ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data
		config.Data = nil
	case LayoutContainerDisk:
		src, err := containerDiskLayer(im.Path, name, st.Size(), im.Created)
		if err != nil {
			return nil, err
		}
		layerSrc = src
		say("Hashing %s as a containerdisk layer...", im.Path)
		d, sha, err := hashSource(src)
		if err != nil {
			return nil, err
		}
		if im.SHA256 != "" && sha != im.SHA256 {
			return nil, fmt.Errorf("%s: its SHA-256 is %s, its metadata says %s: the file changed after its metadata was written", im.Path, sha, im.SHA256)
		}
		out.SHA256 = sha
		layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: src.Size()}
		configBytes, err = imageConfig(platform, im.Created, d)
		if err != nil {
			return nil, err
		}
		config = descriptorOf(ocispec.MediaTypeImageConfig, configBytes)
	default:
		return nil, fmt.Errorf("layout %q: want %s or %s", p.Layout, LayoutContainerDisk, LayoutArtifact)
	}

	annotations := im.Annotations(out.SHA256)
	mb, md, err := manifest(artifactType, config, []ocispec.Descriptor{layer}, nil, annotations)
	if err != nil {
		return nil, err
	}
	md.Platform = platform
	md.ArtifactType = artifactType
	md.Annotations = annotations
	out.Manifest = md
	out.Ref = c.ref.WithReference(md.Digest.String())

	// 1. Blobs.
	if err := c.pushBlob(ctx, config, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(configBytes)), nil }, out); err != nil {
		return nil, c.fail("pushing the config blob", err)
	}
	say("Pushing %s (%d bytes) to %s...", name, layer.Size, c.ref.Name())
	started := time.Now()
	sent := out.BlobsSent
	if err := c.pushBlob(ctx, layer, layerSrc.Open, out); err != nil {
		return nil, c.fail("pushing the disk "+name, err)
	}
	if out.BlobsSent == sent {
		say("Disk blob %s: the registry has it already, not sent again", layer.Digest)
	} else {
		say("Disk blob %s sent in %s", layer.Digest, time.Since(started).Round(time.Millisecond))
	}
	// 2. The manifest, by digest: no tag names it yet.
	if err := c.pushManifest(ctx, md, mb, ""); err != nil {
		return nil, c.fail("pushing the manifest", err)
	}
	// 3. Referrers.
	subject := ocispec.Descriptor{MediaType: md.MediaType, Digest: md.Digest, Size: md.Size}
	var attach []Attachment
	for _, doc := range p.Documents {
		b, err := os.ReadFile(doc.Path)
		if err != nil {
			return nil, err
		}
		attach = append(attach, Attachment{Data: b, ArtifactType: doc.ArtifactType, Title: fileName(doc.Path)})
	}
	if err := c.attach(ctx, subject, attach, p.Attest, im.Created, out, say); err != nil {
		return nil, err
	}
	// 4. Tags: the build's own first, then the moving ones.
	out.BuildTag = BuildTag(im.Name, im.Arch, im.Created, out.SHA256)
	if err := c.pushManifest(ctx, md, mb, out.BuildTag); err != nil {
		return nil, c.fail("tagging "+out.BuildTag, err)
	}
	out.Tags = append(out.Tags, out.BuildTag)
	for _, t := range p.Tags {
		if t == out.BuildTag {
			continue
		}
		idx, err := c.tagPlatform(ctx, t, md, mb, &im, func(ctx context.Context, index ocispec.Descriptor) error {
			return c.attach(ctx, index, nil, p.Attest, im.Created, out, say)
		})
		if err != nil {
			return nil, c.fail("tagging "+t, err)
		}
		if idx != nil {
			out.Index[t] = *idx
			say("Tagged %s: an index of %d platforms", t, len(idx.Annotations))
		}
		out.Tags = append(out.Tags, t)
	}
	return out, nil
}

// pushBlob sends a blob unless the registry has it.
func (c *Client) pushBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error), out *Pushed) error {
	ok, err := c.repo.Blobs().Exists(ctx, d)
	if err != nil {
		return err
	}
	if ok {
		out.BlobsSkipped++
		return nil
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := c.repo.Blobs().Push(ctx, d, rc); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	out.BlobsSent++
	return nil
}

// pushManifest puts a manifest (or index) by digest, or under tag.
func (c *Client) pushManifest(ctx context.Context, d ocispec.Descriptor, b []byte, tag string) error {
	d = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	if tag == "" {
		ok, err := c.repo.Manifests().Exists(ctx, d)
		if err == nil && ok {
			return nil
		}
		return c.repo.Manifests().Push(ctx, d, bytes.NewReader(b))
	}
	return c.repo.Manifests().PushReference(ctx, d, bytes.NewReader(b), tag)
}

// attach pushes atts, then what attest returns for subject, as referrers
// of subject.
func (c *Client) attach(ctx context.Context, subject ocispec.Descriptor, atts []Attachment, attest func(context.Context, ocispec.Descriptor) ([]Attachment, error), created time.Time, out *Pushed, say func(string, ...any)) error {
	subject = ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	if attest != nil {
		more, err := attest(ctx, subject)
		if err != nil {
			return err
		}
		atts = append(atts, more...)
	}
	for _, a := range atts {
		rd, err := c.pushReferrer(ctx, subject, a, created, out)
		if err != nil {
			return c.fail("pushing "+a.Title+" as a referrer", err)
		}
		say("Attached %s (%s) to %s", a.Title, a.ArtifactType, subject.Digest)
		out.Referrers = append(out.Referrers, rd)
	}
	return nil
}

// pushReferrer pushes a as an artifact whose subject is subject, with the
// empty config (image-spec's guidance for artifacts). Its manifest carries
// the image's created time, so that pushing it again gives the same
// digest.
func (c *Client) pushReferrer(ctx context.Context, subject ocispec.Descriptor, a Attachment, created time.Time, out *Pushed) (ocispec.Descriptor, error) {
	layer := descriptorOf(a.ArtifactType, a.Data)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: a.Title}
	if err := c.pushBlob(ctx, layer, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(a.Data)), nil }, out); err != nil {
		return ocispec.Descriptor{}, err
	}
	empty := ocispec.DescriptorEmptyJSON
	empty.Data = nil
	if err := c.pushBlob(ctx, empty, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(ocispec.DescriptorEmptyJSON.Data)), nil
	}, out); err != nil {
		return ocispec.Descriptor{}, err
	}
	annotations := map[string]string{ocispec.AnnotationCreated: created.UTC().Format(time.RFC3339)}
	for k, v := range a.Annotations {
		annotations[k] = v
	}
	mb, md, err := manifest(a.ArtifactType, empty, []ocispec.Descriptor{layer}, &subject, annotations)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	md.ArtifactType = a.ArtifactType
	return md, c.pushManifest(ctx, md, mb, "")
}

// tagPlatform points tag at the manifest md, or at an index of md and the
// other platforms of the same build that tag already names. It returns that
// index's descriptor (its Annotations map each platform's arch to its
// digest, for the caller's message) or nil when the tag names md itself.
func (c *Client) tagPlatform(ctx context.Context, tag string, md ocispec.Descriptor, mb []byte, im *Image, attest func(context.Context, ocispec.Descriptor) error) (*ocispec.Descriptor, error) {
	unlock, err := lockTag(c.ref.Name() + ":" + tag)
	if err != nil {
		return nil, err
	}
	defer unlock()
	others, err := c.samebuildPlatforms(ctx, tag, im)
	if err != nil {
		return nil, err
	}
	if len(others) == 0 || im.BuildID == "" {
		return nil, c.pushManifest(ctx, md, mb, tag)
	}
	children := []ocispec.Descriptor{}
	for _, o := range others {
		if o.Platform != nil && o.Platform.Architecture != md.Platform.Architecture {
			children = append(children, o)
		}
	}
	children = append(children, md)
	slices.SortFunc(children, func(a, b ocispec.Descriptor) int {
		switch {
		case a.Platform.Architecture < b.Platform.Architecture:
			return -1
		case a.Platform.Architecture > b.Platform.Architecture:
			return 1
		}
		return 0
	})
	if len(children) == 1 {
		return nil, c.pushManifest(ctx, md, mb, tag)
	}
	created := im.Created
	for _, ch := range children {
		if t, err := time.Parse(time.RFC3339, ch.Annotations[ocispec.AnnotationCreated]); err == nil && t.After(created) {
			created = t
		}
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: children,
		Annotations: map[string]string{
			ocispec.AnnotationCreated: created.UTC().Format(time.RFC3339),
			AnnotationName:            im.Name,
			AnnotationBuildID:         im.BuildID,
		},
	}
	ib, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	id := descriptorOf(ocispec.MediaTypeImageIndex, ib)
	if err := c.pushManifest(ctx, id, ib, ""); err != nil {
		return nil, err
	}
	if err := attest(ctx, id); err != nil {
		return nil, err
	}
	if err := c.pushManifest(ctx, id, ib, tag); err != nil {
		return nil, err
	}
	id.Annotations = map[string]string{}
	for _, ch := range children {
		id.Annotations[ch.Platform.Architecture] = ch.Digest.String()
	}
	return &id, nil
}

// samebuildPlatforms returns the platform manifests that tag names (itself,
// or the children of the index it names) when they are images of im's name
// and build id; none when the tag does not exist or names anything else.
func (c *Client) samebuildPlatforms(ctx context.Context, tag string, im *Image) ([]ocispec.Descriptor, error) {
	d, err := c.repo.Resolve(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	same := func(a map[string]string) bool {
		return a[AnnotationName] == im.Name && a[AnnotationBuildID] == im.BuildID && im.BuildID != ""
	}
	switch d.MediaType {
	case ocispec.MediaTypeImageIndex:
		var idx ocispec.Index
		if err := c.fetchJSON(ctx, d, &idx); err != nil {
			return nil, err
		}
		if !same(idx.Annotations) {
			return nil, nil
		}
		var out []ocispec.Descriptor
		for _, ch := range idx.Manifests {
			if ch.Platform != nil && same(ch.Annotations) {
				out = append(out, ch)
			}
		}
		return out, nil
	case ocispec.MediaTypeImageManifest:
		var m ocispec.Manifest
		if err := c.fetchJSON(ctx, d, &m); err != nil {
			return nil, err
		}
		if !same(m.Annotations) {
			return nil, nil
		}
		p, err := Platform(m.Annotations[AnnotationArch])
		if err != nil {
			return nil, nil
		}
		d.Platform, d.ArtifactType, d.Annotations = p, m.ArtifactType, m.Annotations
		return []ocispec.Descriptor{d}, nil
	}
	return nil, nil
}

// fetchJSON fetches a manifest or index (at most 4 MiB, the limit the
// distribution spec lets registries enforce) and decodes it.
func (c *Client) fetchJSON(ctx context.Context, d ocispec.Descriptor, v any) error {
	rc, err := c.repo.Manifests().Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	if err != nil {
		return err
	}
	if d.Size > 0 && digest.FromBytes(b) != d.Digest {
		return fmt.Errorf("manifest %s: the registry sent content of another digest", d.Digest)
	}
	return json.Unmarshal(b, v)
}
