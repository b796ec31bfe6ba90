package ociregistry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// ArtifactTypeSigstoreBundle is the artifactType of a Sigstore bundle
// referrer (cosign's specs/BUNDLE_SPEC.md), and AnnotationBundlePredicate
// the annotation that names the predicate type of the statement it signs.
const (
	ArtifactTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
	AnnotationBundleContent    = "dev.sigstore.bundle.content"
	AnnotationBundlePredicate  = "dev.sigstore.bundle.predicateType"
)

// Bundles returns the Sigstore bundles attached to subject as referrers
// whose statement is of predicateType (by the referrer manifest's
// AnnotationBundlePredicate), each at most 1 MiB.
func (c *Client) Bundles(ctx context.Context, subject ocispec.Descriptor, predicateType string) ([][]byte, error) {
	var refs []ocispec.Descriptor
	err := c.repo.Referrers(ctx, subject, ArtifactTypeSigstoreBundle, func(page []ocispec.Descriptor) error {
		refs = append(refs, page...)
		return nil
	})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return nil, c.fail("listing the referrers of "+subject.Digest.String(), err)
	}
	var out [][]byte
	for _, r := range refs {
		var m ocispec.Manifest
		if err := c.fetchJSON(ctx, r, &m); err != nil {
			return nil, c.fail("reading referrer "+r.Digest.String(), err)
		}
		if m.Annotations[AnnotationBundlePredicate] != predicateType || len(m.Layers) != 1 || m.Layers[0].Size > 1<<20 {
			continue
		}
		rc, err := c.repo.Blobs().Fetch(ctx, m.Layers[0])
		if err != nil {
			return nil, c.fail("fetching bundle "+m.Layers[0].Digest.String(), err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return nil, c.fail("fetching bundle "+m.Layers[0].Digest.String(), err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Verify checks that e (from Describe or Newest) is signed with one of keys
// as cloudimg-oci signs in the registry — as `cosign verify --key` and
// `cosign verify-attestation --key … --type slsaprovenance1` check it,
// offline — and that its signed provenance names the image name and
// labels (when name is not empty) and finished when e was created, so that
// another validly signed image cannot stand in for the one asked for. The
// manifest's digest covers its annotations and the disk layer's digest, so
// a verified manifest vouches for the disk's sha256 too. It returns the key
// that verified. Errors say what is missing or failed, with the keys'
// fingerprints.
func (c *Client) Verify(ctx context.Context, e *Entry, keys []*signing.PublicKey, name string, labels map[string]string) (*signing.PublicKey, error) {
	digest, err := hex.DecodeString(e.Manifest.Digest.Encoded())
	if err != nil {
		return nil, err
	}
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = k.Fingerprint
	}
	verify := func(predicateType, what string) (*signing.Verified, error) {
		bundles, err := c.Bundles(ctx, e.Manifest, predicateType)
		if err != nil {
			return nil, err
		}
		if len(bundles) == 0 {
			return nil, fmt.Errorf("%s has no %s (no Sigstore bundle referrer of %s; keys tried: %s)", e.Ref, what, predicateType, strings.Join(fps, ", "))
		}
		var errs []string
		for _, b := range bundles {
			v, err := signing.VerifyAttestation(b, digest, keys, predicateType)
			if err == nil {
				return v, nil
			}
			errs = append(errs, err.Error())
		}
		return nil, fmt.Errorf("%s: its %s %s", e.Ref, what, strings.Join(errs, "; "))
	}
	v, err := verify(signing.PredicateCosignSign, "signature")
	if err != nil {
		return nil, err
	}
	pv, err := verify(signing.PredicateSLSAProvenance1, "signed provenance")
	if err != nil {
		return nil, err
	}
	if name != "" {
		if err := signing.CheckProvenance(pv.Statement, name, labels); err != nil {
			return nil, fmt.Errorf("%s: its signed provenance: %w", e.Ref, err)
		}
	}
	if signed := signing.ProvenanceFinishedOn(pv.Statement); !signed.IsZero() && !e.Created.IsZero() &&
		!signed.Truncate(time.Second).Equal(e.Created.Truncate(time.Second)) {
		return nil, fmt.Errorf("%s: the signed provenance says the build finished at %s, the manifest says %s",
			e.Ref, signed.UTC().Format(time.RFC3339), e.Created.UTC().Format(time.RFC3339))
	}
	return v.Key, nil
}
