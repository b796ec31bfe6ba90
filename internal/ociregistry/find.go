package ociregistry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
)

// Entry is one image in a repository, as its manifest's annotations
// describe it.
type Entry struct {
	// Manifest is the platform manifest of the image.
	Manifest ocispec.Descriptor
	// Ref names Manifest by digest.
	Ref Reference
	// Tags are the tags naming Manifest itself, sorted; IndexTags those
	// naming an index that holds it.
	Tags, IndexTags []string
	// Layout is LayoutArtifact or LayoutContainerDisk.
	Layout string
	// The annotations' values (see the Annotation* constants).
	Name, SHA256, File, Format, Arch, Firmware, BuildID, SourceURL string
	Labels                                                         map[string]string
	Created                                                        time.Time
}

// List returns every image of the repository that this package pushed
// (those whose manifests carry AnnotationName and AnnotationSHA256),
// newest first (by created; equal times by digest). Only tagged manifests
// are found: each build has its own tag (BuildTag), and the referrers
// tag-schema tags (`sha256-…`) are skipped. It reads the tag list and each
// distinct manifest once.
func (c *Client) List(ctx context.Context) ([]Entry, error) {
	var tags []string
	if err := c.repo.Tags(ctx, "", func(page []string) error {
		tags = append(tags, page...)
		return nil
	}); err != nil {
		return nil, c.fail("listing tags", err)
	}
	byDigest := map[digest.Digest]*Entry{}
	indexTags := map[digest.Digest][]string{} // index digest -> tags
	indexes := map[digest.Digest]ocispec.Index{}
	var order []digest.Digest
	add := func(d ocispec.Descriptor, m *ocispec.Manifest) {
		if _, seen := byDigest[d.Digest]; seen {
			return
		}
		e, ok := entryOf(d, m)
		if !ok {
			return
		}
		e.Ref = c.ref.WithReference(d.Digest.String())
		byDigest[d.Digest] = e
		order = append(order, d.Digest)
	}
	for _, t := range tags {
		if strings.HasPrefix(t, "sha256-") {
			continue
		}
		d, err := c.repo.Resolve(ctx, t)
		if errors.Is(err, errdef.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, c.fail("resolving tag "+t, err)
		}
		switch d.MediaType {
		case ocispec.MediaTypeImageManifest:
			if _, seen := byDigest[d.Digest]; !seen {
				var m ocispec.Manifest
				if err := c.fetchJSON(ctx, d, &m); errors.Is(err, errdef.ErrNotFound) {
					continue // a tag left dangling by a deletion
				} else if err != nil {
					return nil, c.fail("reading manifest "+d.Digest.String(), err)
				}
				add(d, &m)
			}
			if e, ok := byDigest[d.Digest]; ok {
				e.Tags = append(e.Tags, t)
			}
		case ocispec.MediaTypeImageIndex:
			indexTags[d.Digest] = append(indexTags[d.Digest], t)
			if _, seen := indexes[d.Digest]; !seen {
				var idx ocispec.Index
				if err := c.fetchJSON(ctx, d, &idx); errors.Is(err, errdef.ErrNotFound) {
					continue
				} else if err != nil {
					return nil, c.fail("reading index "+d.Digest.String(), err)
				}
				indexes[d.Digest] = idx
			}
		}
	}
	for id, idx := range indexes {
		for _, ch := range idx.Manifests {
			if _, seen := byDigest[ch.Digest]; !seen && ch.MediaType == ocispec.MediaTypeImageManifest {
				var m ocispec.Manifest
				if err := c.fetchJSON(ctx, ch, &m); errors.Is(err, errdef.ErrNotFound) {
					continue
				} else if err != nil {
					return nil, c.fail("reading manifest "+ch.Digest.String(), err)
				}
				add(ch, &m)
			}
			if e, ok := byDigest[ch.Digest]; ok {
				e.IndexTags = append(e.IndexTags, indexTags[id]...)
			}
		}
	}
	out := make([]Entry, 0, len(order))
	for _, d := range order {
		e := byDigest[d]
		slices.Sort(e.Tags)
		slices.Sort(e.IndexTags)
		e.IndexTags = slices.Compact(e.IndexTags)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(string(b.Manifest.Digest), string(a.Manifest.Digest))
	})
	return out, nil
}

// entryOf reads an image manifest's annotations; ok is false for a
// manifest this package did not push.
func entryOf(d ocispec.Descriptor, m *ocispec.Manifest) (*Entry, bool) {
	a := m.Annotations
	if a[AnnotationName] == "" || a[AnnotationSHA256] == "" {
		return nil, false
	}
	created, _ := time.Parse(time.RFC3339, a[ocispec.AnnotationCreated])
	layout := LayoutContainerDisk
	if m.ArtifactType == ArtifactTypeDisk {
		layout = LayoutArtifact
	}
	d = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: m.ArtifactType}
	return &Entry{
		Manifest: d, Layout: layout,
		Name: a[AnnotationName], SHA256: a[AnnotationSHA256], File: a[AnnotationFile], Format: a[AnnotationFormat],
		Arch: a[AnnotationArch], Firmware: a[AnnotationFirmware], BuildID: a[AnnotationBuildID],
		SourceURL: a[AnnotationSourceURL], Labels: labelsOf(a), Created: created,
	}, true
}

// ErrNoImage is (wrapped in) Newest's error when nothing matches.
var ErrNoImage = errors.New("no matching image")

// Newest returns the newest image of name whose labels include labels
// (each with that value) for the architecture arch ("" for any). The error
// wraps ErrNoImage and lists what the repository has when none matches.
func (c *Client) Newest(ctx context.Context, name string, labels map[string]string, arch string) (*Entry, error) {
	all, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range all {
		e := &all[i]
		if e.Name == name && (arch == "" || e.Arch == arch) && imagemeta.HasLabels(e.Labels, labels) {
			return e, nil
		}
		names = append(names, fmt.Sprintf("%s (%s) %s", e.Name, e.Arch, imagemeta.FormatLabels(e.Labels)))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	have := "it holds no image pushed by cloudimg-oci"
	if len(names) > 0 {
		have = "it holds " + strings.Join(names, ", ")
	}
	want := name
	if arch != "" {
		want += " (" + arch + ")"
	}
	return nil, fmt.Errorf("registry %s, repository %s: %w %s %s: %s", c.ref.Registry, c.ref.Repository, ErrNoImage, want, imagemeta.FormatLabels(labels), have)
}

// Describe returns the image that ref (a tag or a digest) names: the
// platform manifest for arch when it names an index.
func (c *Client) Describe(ctx context.Context, ref string, arch string) (*Entry, error) {
	d, err := c.repo.Resolve(ctx, ref)
	if err != nil {
		return nil, c.fail("resolving "+ref, err)
	}
	if d.MediaType == ocispec.MediaTypeImageIndex {
		var idx ocispec.Index
		if err := c.fetchJSON(ctx, d, &idx); err != nil {
			return nil, c.fail("reading index "+d.Digest.String(), err)
		}
		var found *ocispec.Descriptor
		var have []string
		for i, ch := range idx.Manifests {
			if ch.Platform == nil {
				continue
			}
			have = append(have, ch.Platform.Architecture)
			if want, err := Platform(arch); err == nil && ch.Platform.Architecture == want.Architecture {
				found = &idx.Manifests[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("registry %s, repository %s: %s is an index of %s, with no %q image", c.ref.Registry, c.ref.Repository, ref, strings.Join(have, ", "), arch)
		}
		d = *found
	}
	var m ocispec.Manifest
	if err := c.fetchJSON(ctx, d, &m); err != nil {
		return nil, c.fail("reading manifest "+d.Digest.String(), err)
	}
	e, ok := entryOf(d, &m)
	if !ok {
		return nil, fmt.Errorf("registry %s, repository %s: %s was not pushed by cloudimg-oci (no %s annotation): cannot tell which file is the disk and its checksum", c.ref.Registry, c.ref.Repository, ref, AnnotationSHA256)
	}
	e.Ref = c.ref.WithReference(d.Digest.String())
	return e, nil
}
