package ociregistry

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pull writes the disk of the image e (from Describe or Newest) to w,
// streamed: the artifact layout's one blob as it is; a containerdisk's
// first regular file under `disk/` (what CDI imports). It checks the blob's
// digest and that the disk's SHA-256 is e.SHA256, and returns that
// SHA-256. On any error w may hold part of the disk: the caller discards
// it.
func (c *Client) Pull(ctx context.Context, e *Entry, w io.Writer) (string, error) {
	var m ocispec.Manifest
	if err := c.fetchJSON(ctx, e.Manifest, &m); err != nil {
		return "", c.fail("reading manifest "+e.Manifest.Digest.String(), err)
	}
	if len(m.Layers) != 1 {
		return "", fmt.Errorf("registry %s, repository %s: manifest %s has %d layers, want 1 (a disk image pushed by cloudimg-oci)", c.ref.Registry, c.ref.Repository, e.Manifest.Digest, len(m.Layers))
	}
	layer := m.Layers[0]
	rc, err := c.repo.Blobs().Fetch(ctx, layer)
	if err != nil {
		return "", c.fail("fetching blob "+layer.Digest.String(), err)
	}
	defer rc.Close()
	blob := digest.SHA256.Digester()
	in := io.TeeReader(io.LimitReader(rc, layer.Size), blob.Hash())
	disk := sha256.New()
	buf := make([]byte, 1<<20)
	switch {
	case m.ArtifactType == ArtifactTypeDisk:
		// The blob is the disk: one digest serves both checks.
		if _, err := io.CopyBuffer(w, in, buf); err != nil {
			return "", c.fail("fetching blob "+layer.Digest.String(), err)
		}
		disk = nil
	default:
		tr := tar.NewReader(in)
		found := false
		for !found {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("registry %s, repository %s: the layer of %s holds no file under disk/", c.ref.Registry, c.ref.Repository, e.Manifest.Digest)
			}
			if err != nil {
				return "", c.fail("reading the layer of "+e.Manifest.Digest.String(), err)
			}
			if h.Typeflag == tar.TypeReg && strings.HasPrefix(strings.TrimPrefix(h.Name, "./"), "disk/") {
				if _, err := io.CopyBuffer(io.MultiWriter(w, disk), tr, buf); err != nil {
					return "", c.fail("fetching blob "+layer.Digest.String(), err)
				}
				found = true
			}
		}
		// The rest of the layer, so that its digest can be checked.
		if _, err := io.CopyBuffer(io.Discard, in, buf); err != nil {
			return "", c.fail("fetching blob "+layer.Digest.String(), err)
		}
	}
	if blob.Digest() != layer.Digest {
		return "", fmt.Errorf("registry %s, repository %s: blob %s arrived with digest %s", c.ref.Registry, c.ref.Repository, layer.Digest, blob.Digest())
	}
	sum := blob.Digest().Encoded()
	if disk != nil {
		sum = hex.EncodeToString(disk.Sum(nil))
	}
	if e.SHA256 != "" && sum != e.SHA256 {
		return "", fmt.Errorf("registry %s, repository %s: the disk of %s has SHA-256 %s, its annotation says %s", c.ref.Registry, c.ref.Repository, e.Manifest.Digest, sum, e.SHA256)
	}
	return sum, nil
}
