package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// configureSigning checks the signing options and loads the key, so that a
// wrong path or password fails before the build starts. The password is
// registered with the SDK's log filter first.
func (p *PostProcessor) configureSigning() error {
	c := &p.config
	if c.KeyPassword != "" {
		packersdk.LogSecretFilter.Set(c.KeyPassword)
	}
	if v := os.Getenv(signing.PasswordEnv); v != "" {
		packersdk.LogSecretFilter.Set(v)
	}
	switch c.SigningMode {
	case "":
		c.SigningMode = SigningNone
		if c.KeyFile != "" {
			c.SigningMode = SigningKey
		}
	case SigningNone, SigningKey:
	case "kms", "keyless":
		return fmt.Errorf("signing_mode: %q needs a KMS or Sigstore's online services (Fulcio, Rekor), which this post-processor does not use: sign with a key (signing_mode = \"key\", key_file), or sign keyless afterwards with cosign (see the documentation's Signing and verifying)", c.SigningMode)
	default:
		return fmt.Errorf("signing_mode: %q is not one of %s, %s", c.SigningMode, SigningNone, SigningKey)
	}
	if c.SigningMode == SigningNone {
		if c.KeyFile != "" || c.KeyPassword != "" || len(c.Verifier) > 0 {
			return errors.New("signing_mode = \"none\": remove key_file, key_password and verifier, or set signing_mode = \"key\"")
		}
		return nil
	}
	if c.KeyFile == "" {
		return errors.New("key_file: required with signing_mode = \"key\" (the private key, e.g. cosign.key from cosign generate-key-pair, or env://NAME)")
	}
	if !slices.Contains(c.ChecksumTypes, "sha256") {
		// The bundles sign the image's SHA-256.
		c.ChecksumTypes = append(c.ChecksumTypes, "sha256")
	}
	s, err := signing.LoadSigner(c.KeyFile, signing.PasswordFrom(c.KeyPassword))
	if err != nil {
		return fmt.Errorf("key_file: %w", err)
	}
	p.signer = s
	p.verifiers = nil
	for i, ref := range c.Verifier {
		k, err := signing.LoadPublicKey(ref)
		if err != nil {
			return fmt.Errorf("verifier[%d]: %w", i, err)
		}
		p.verifiers = append(p.verifiers, k)
	}
	if len(p.verifiers) == 0 {
		p.verifiers = []*signing.PublicKey{s.PublicKey()}
	}
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
