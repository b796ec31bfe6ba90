package ociregistry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// attestations are the in-toto predicates of an image's documents, to be
// signed again with the pushed manifest as their subject: the predicate
// type and the predicate's JSON.
type attestation struct {
	predicateType string
	predicate     json.RawMessage
}

// documentAttestations reads the image's documents: the provenance
// statement's predicate, and the SBOM itself as a CycloneDX or SPDX
// predicate (what `cosign attest --type cyclonedx|spdxjson` attaches).
func documentAttestations(docs []Document) ([]attestation, error) {
	var out []attestation
	for _, d := range docs {
		b, err := os.ReadFile(d.Path)
		if err != nil {
			return nil, err
		}
		switch d.ArtifactType {
		case ArtifactTypeInToto:
			st, err := signing.ParseStatement(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Path, err)
			}
			out = append(out, attestation{predicateType: st.PredicateType, predicate: st.Predicate})
		case ArtifactTypeCycloneDX:
			out = append(out, attestation{predicateType: signing.PredicateCycloneDX, predicate: b})
		case ArtifactTypeSPDX:
			out = append(out, attestation{predicateType: signing.PredicateSPDX, predicate: b})
		}
	}
	return out, nil
}

// Attester returns a Push.Attest that signs a pushed manifest the way cosign v3 signs an image in the
// bundle format: a DSSE-signed statement of type PredicateCosignSign whose
// subject is the manifest digest (`cosign verify --key`), and, for an image
// manifest, each of its documents' predicates re-signed with the manifest
// as subject (`cosign verify-attestation --type …`); an index gets the
// signature only. Each bundle is verified with the verifiers before it is
// attached.
//
// docs are the image's documents (Push.Documents), whose predicates are
// read now. Verify checks what this attaches.
func Attester(signer *signing.Signer, verifiers []*signing.PublicKey, docs []Document) (func(context.Context, ocispec.Descriptor) ([]Attachment, error), error) {
	atts, err := documentAttestations(docs)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, subject ocispec.Descriptor) ([]Attachment, error) {
		digest, err := hex.DecodeString(subject.Digest.Encoded())
		if err != nil {
			return nil, err
		}
		todo := []attestation{{predicateType: signing.PredicateCosignSign, predicate: json.RawMessage("{}")}}
		if subject.MediaType == ocispec.MediaTypeImageManifest {
			todo = append(todo, atts...)
		}
		var out []Attachment
		for _, a := range todo {
			st, err := signing.NewStatement([]signing.Subject{{SHA256: subject.Digest.Encoded()}}, a.predicateType, a.predicate)
			if err != nil {
				return nil, err
			}
			b, err := signer.SignStatement(ctx, st)
			if err != nil {
				return nil, err
			}
			if _, err := signing.VerifyAttestation(b, digest, verifiers, a.predicateType); err != nil {
				return nil, fmt.Errorf("the signature of %s (%s) does not verify with verifier: %w", subject.Digest, a.predicateType, err)
			}
			sum := sha256.Sum256(b)
			bd := hex.EncodeToString(sum[:])
			out = append(out, Attachment{
				Data: b, ArtifactType: ArtifactTypeSigstoreBundle, Title: "sha256-" + bd + ".sigstore.json",
				Annotations: map[string]string{AnnotationBundleContent: "dsse-envelope", AnnotationBundlePredicate: a.predicateType},
			})
		}
		return out, nil
	}, nil
}
