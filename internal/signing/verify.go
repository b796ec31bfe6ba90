package signing

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Kind is what a bundle signs.
type Kind int

// Bundle kinds.
const (
	// KindBlob is a message signature over a file's (or manifest's) digest.
	KindBlob Kind = iota + 1
	// KindAttestation is a DSSE envelope over an in-toto statement.
	KindAttestation
)

func (k Kind) String() string {
	switch k {
	case KindBlob:
		return "signature"
	case KindAttestation:
		return "attestation"
	}
	return "bundle"
}

// Verified is what a bundle that verified says.
type Verified struct {
	// Kind is what the bundle signs.
	Kind Kind
	// Key is the key it verified with.
	Key *PublicKey
	// Statement is the signed in-toto statement (KindAttestation only),
	// parsed from the exact payload that was verified.
	Statement *Statement
}

// VerifyError is returned when a bundle verifies with none of the keys.
type VerifyError struct {
	// Failures are "<key>: <what failed>", one per key tried, in order.
	Failures []string
}

func (e *VerifyError) Error() string {
	if len(e.Failures) == 1 {
		return "does not verify with the key " + e.Failures[0]
	}
	return fmt.Sprintf("does not verify with any of the %d keys: %s", len(e.Failures), strings.Join(e.Failures, "; "))
}

// VerifyBlob checks that bundleJSON is a message signature over the
// SHA-256 digest (32 bytes) made by one of keys — what `cosign verify-blob
// --key … --bundle … --insecure-ignore-tlog=true` checks.
func VerifyBlob(bundleJSON, digest []byte, keys []*PublicKey) (*Verified, error) {
	return Verify(bundleJSON, digest, keys, KindBlob, "")
}

// VerifyAttestation checks that bundleJSON is a DSSE envelope made by one of
// keys over an in-toto statement of predicateType whose subject has the
// SHA-256 digest — what `cosign verify-blob-attestation --key … --type …
// --insecure-ignore-tlog=true` checks for a file, and `cosign
// verify-attestation` for a manifest digest.
func VerifyAttestation(bundleJSON, digest []byte, keys []*PublicKey, predicateType string) (*Verified, error) {
	return Verify(bundleJSON, digest, keys, KindAttestation, predicateType)
}

// Verify checks bundleJSON against the SHA-256 digest (a file's or a
// registry manifest's) with each key in turn until one verifies. want is
// the kind the caller expects (0: either); predicateType, when not empty,
// is the attestation's required predicate type. The bundle must carry a
// public key hint (no certificate: keyless bundles are not verified here)
// and needs no timestamp or transparency-log entry. A *VerifyError names
// every key tried and what failed with it.
func Verify(bundleJSON, digest []byte, keys []*PublicKey, want Kind, predicateType string) (*Verified, error) {
	if len(keys) == 0 {
		return nil, errors.New("no public key to verify with")
	}
	if len(digest) != 32 {
		return nil, fmt.Errorf("a SHA-256 digest has 32 bytes, not %d", len(digest))
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	kind := KindBlob
	if b.GetDsseEnvelope() != nil {
		kind = KindAttestation
	}
	if want != 0 && kind != want {
		return nil, fmt.Errorf("the bundle holds an %s, not the expected %s", kind, want)
	}
	if b.VerificationMaterial.GetPublicKey() == nil {
		return nil, errors.New("the bundle was not signed with a key (it carries a certificate: keyless bundles are verified with cosign and an identity, not with verify_key)")
	}
	var failures []string
	for _, k := range keys {
		res, err := verifyWith(&b, digest, k)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		v := &Verified{Kind: kind, Key: k}
		if kind == KindAttestation {
			// The payload that verified, parsed as it is (not the
			// verifier's protobuf rendering of it).
			st, err := ParseStatement(b.GetDsseEnvelope().GetPayload())
			if err != nil {
				return nil, fmt.Errorf("verified with %s, but: %w", k, err)
			}
			if !st.NamesDigest(hex.EncodeToString(digest)) || res.Statement == nil {
				return nil, fmt.Errorf("verified with %s, but the statement's subject is not sha256:%x", k, digest)
			}
			if predicateType != "" && st.PredicateType != predicateType {
				return nil, fmt.Errorf("verified with %s, but the statement's predicate type is %q, not %q", k, st.PredicateType, predicateType)
			}
			v.Statement = st
		}
		return v, nil
	}
	return nil, &VerifyError{Failures: failures}
}

// verifyWith is sigstore-go's verifier with one trusted key and no
// timestamps, checking the bundle's signature and that it is about digest.
func verifyWith(b *bundle.Bundle, digest []byte, k *PublicKey) (*verify.VerificationResult, error) {
	sv, err := signature.LoadVerifier(k.Key, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(sv, timeZero, timeZero), nil
	})
	v, err := verify.NewVerifier(material, verify.WithNoObserverTimestamps())
	if err != nil {
		return nil, err
	}
	return v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithKey()))
}

// timeZero leaves a trusted key's validity open at both ends.
var timeZero time.Time
