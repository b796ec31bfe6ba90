package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// configureSigning checks the signing options and loads the key
// (signconfig), so that a wrong path or password fails before the build
// starts; the bundles sign the image's SHA-256, so signing adds sha256 to
// checksum_types.
func (p *PostProcessor) configureSigning() error {
	c := &p.config
	s, verifiers, err := c.Signing.Load()
	if err != nil || s == nil {
		return err
	}
	if !slices.Contains(c.ChecksumTypes, "sha256") {
		c.ChecksumTypes = append(c.ChecksumTypes, "sha256")
	}
	p.signer, p.verifiers = s, verifiers
	return nil
}

// document is one file written beside an image: its sidecar kind, path and
// bytes.
type document struct {
	kind, path string
	data       []byte
}

// sign makes the Sigstore bundles of an image (its SHA-256 in hex) and of
// its documents (the SBOM and the provenance among docs), each checked
// against the verifier keys before anything is written.
func (p *PostProcessor) sign(ctx context.Context, image, sha256Hex string, docs []document) ([]document, error) {
	digest, err := hex.DecodeString(sha256Hex)
	if err != nil || len(digest) != sha256.Size {
		return nil, fmt.Errorf("the image has no SHA-256 (got %q)", sha256Hex)
	}
	var out []document
	add := func(kind, path string, bundle []byte, want signing.Kind, predicateType string) error {
		if _, err := signing.Verify(bundle, digest, p.verifiers, want, predicateType); err != nil {
			return fmt.Errorf("%s, signed with the key sha256:%s, %w (verifier)", filepath.Base(path), p.signer.Fingerprint(), err)
		}
		out = append(out, document{kind, path, bundle})
		return nil
	}
	b, err := p.signer.SignBlob(ctx, digest)
	if err != nil {
		return nil, err
	}
	if err := add(imagemeta.SidecarSignature, image+".sigstore.json", b, signing.KindBlob, ""); err != nil {
		return nil, err
	}
	for _, d := range docs {
		var statement []byte
		var predicateType, path, kind string
		switch d.kind {
		case imagemeta.SidecarProvenance:
			// The provenance is a statement already: its bytes are signed.
			statement, predicateType = d.data, signing.PredicateSLSAProvenance1
			path, kind = image+".provenance.sigstore.json", imagemeta.SidecarProvenanceSignature
		case imagemeta.SidecarCycloneDX, imagemeta.SidecarSPDX:
			predicateType = signing.PredicateCycloneDX
			if d.kind == imagemeta.SidecarSPDX {
				predicateType = signing.PredicateSPDX
			}
			// As cosign attest-blob does: the SBOM is the predicate of a
			// statement about the image.
			statement, err = signing.NewStatement([]signing.Subject{{Name: filepath.Base(image), SHA256: sha256Hex}}, predicateType, d.data)
			if err != nil {
				return nil, err
			}
			path, kind = image+".sbom.sigstore.json", imagemeta.SidecarSBOMSignature
		default:
			continue
		}
		b, err := p.signer.SignStatement(ctx, statement)
		if err != nil {
			return nil, err
		}
		if err := add(kind, path, b, signing.KindAttestation, predicateType); err != nil {
			return nil, err
		}
	}
	return out, nil
}
