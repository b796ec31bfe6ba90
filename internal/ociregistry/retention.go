package ociregistry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
)

// Removed is one image KeepLast deleted.
type Removed struct {
	Entry Entry
	// Referrers are the referrer manifests deleted with it.
	Referrers int
}

// Kept is an older image KeepLast left because another tag names it.
type Kept struct {
	Entry Entry
	// Why names the tags that hold it.
	Why string
}

// KeepLast keeps the newest keep images (by created) that have name, arch
// and exactly labels, and deletes the older ones: first each one's
// referrers (SBOM, provenance, signatures), then its manifest, which
// removes its build tag; blobs are left to the registry's garbage
// collection (Distribution: `registry garbage-collect`). An image that a
// tag other than its own build tag names — directly or through an index —
// is kept. keep < 1 deletes nothing.
//
// A registry that refuses deletion (Distribution without
// storage.delete.enabled; Docker Hub and GHCR through this API) fails the
// first delete, so nothing is removed; the error wraps ErrDeleteRefused.
func (c *Client) KeepLast(ctx context.Context, keep int, name, arch string, labels map[string]string) ([]Removed, []Kept, error) {
	if keep < 1 {
		return nil, nil, nil
	}
	all, err := c.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	var removed []Removed
	var kept []Kept
	n := 0
	for _, e := range all { // newest first
		if e.Name != name || e.Arch != arch || !maps.Equal(e.Labels, labels) {
			continue
		}
		n++
		if n <= keep {
			continue
		}
		own := BuildTag(e.Name, e.Arch, e.Created, e.SHA256)
		var holders []string
		for _, t := range e.Tags {
			if t != own {
				holders = append(holders, t)
			}
		}
		holders = append(holders, e.IndexTags...)
		if len(holders) > 0 {
			kept = append(kept, Kept{Entry: e, Why: "tagged " + strings.Join(holders, ", ")})
			continue
		}
		r, err := c.deleteImage(ctx, e)
		if err != nil {
			if len(removed) == 0 && r == 0 && errors.Is(err, ErrDeleteRefused) {
				return nil, kept, fmt.Errorf("registry %s, repository %s: keep_last: %w (nothing was removed; Distribution needs storage.delete.enabled, Docker Hub and GHCR allow no deletion through the registry API: remove keep_last there)", c.ref.Registry, c.ref.Repository, err)
			}
			return removed, kept, c.fail(fmt.Sprintf("keep_last: deleting %s (%d older images removed before it)", e.Ref, len(removed)), err)
		}
		removed = append(removed, Removed{Entry: e, Referrers: r})
	}
	return removed, kept, nil
}

// deleteImage deletes e's referrers, their tag-schema index, then e's
// manifest. It returns how many referrers it deleted.
func (c *Client) deleteImage(ctx context.Context, e Entry) (int, error) {
	var refs []ocispec.Descriptor
	if err := c.repo.Referrers(ctx, e.Manifest, "", func(page []ocispec.Descriptor) error {
		refs = append(refs, page...)
		return nil
	}); err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return 0, err
	}
	n := 0
	del := func(d ocispec.Descriptor) error {
		err := c.repo.Manifests().Delete(ctx, d)
		if err != nil && isDeleteRefused(err) {
			return fmt.Errorf("%w: %w", ErrDeleteRefused, err)
		}
		if errors.Is(err, errdef.ErrNotFound) {
			return nil
		}
		return err
	}
	for _, r := range refs {
		if err := del(r); err != nil {
			return n, err
		}
		n++
	}
	// Where the registry has no referrers API, the referrers live in an
	// index tagged sha256-<hex> (distribution spec, "Referrers Tag Schema").
	schemaTag := "sha256-" + e.Manifest.Digest.Encoded()
	if d, err := c.repo.Resolve(ctx, schemaTag); err == nil {
		if err := del(d); err != nil {
			return n, err
		}
	}
	return n, del(e.Manifest)
}
