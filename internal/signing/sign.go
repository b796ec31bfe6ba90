package signing

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// InTotoPayloadType is the DSSE payload type of an in-toto Statement.
const InTotoPayloadType = "application/vnd.in-toto+json"

// BundleMediaType is the media type of the bundles this package writes (and
// the OCI artifactType cosign gives a bundle referrer).
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Signer signs with one private key. It is safe for concurrent use.
type Signer struct {
	key         crypto.Signer
	fingerprint string
	source      string
}

// LoadSigner reads a private key from a file or env://NAME: cosign's
// encrypted key (`cosign generate-key-pair`, decrypted with password) or a
// plain PKCS#8 (or SEC 1 EC) PEM key; ECDSA P-256 only. Errors name ref and
// what to do, never the password or the key.
func LoadSigner(ref string, password Password) (*Signer, error) {
	b, err := ReadKey(ref)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", ref, err)
	}
	s, err := ParseSigner(b, password, ref)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", ref, err)
	}
	return s, nil
}

// ParseSigner is LoadSigner on PEM text; source labels it in messages.
func ParseSigner(pemBytes []byte, password Password, source string) (*Signer, error) {
	k, err := parsePrivateKey(pemBytes, password)
	if err != nil {
		return nil, err
	}
	fp, err := Fingerprint(k.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{key: k, fingerprint: fp, source: source}, nil
}

// Fingerprint is the key's fingerprint (see Fingerprint).
func (s *Signer) Fingerprint() string { return s.fingerprint }

// PublicKey is the signer's public key, as a verifier takes it.
func (s *Signer) PublicKey() *PublicKey {
	return &PublicKey{Key: s.key.Public(), Fingerprint: s.fingerprint, Source: s.source}
}

// PublicKeyPEM is the public key in PEM, as cosign.pub holds it.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(s.key.Public())
}

// SignBlob signs a file given its SHA-256 (32 bytes; a registry manifest's
// digest works the same) and returns the Sigstore bundle JSON: a message
// signature that `cosign verify-blob --key … --bundle … FILE` verifies.
func (s *Signer) SignBlob(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("signing: a SHA-256 digest has %d bytes, not %d", sha256.Size, len(digest))
	}
	return s.bundle(ctx, &digestContent{digest: digest}, true)
}

// SignStatement signs an in-toto Statement (its exact bytes; see Statement)
// and returns the Sigstore bundle JSON holding the DSSE envelope, which
// `cosign verify-blob-attestation --key … --bundle … --type …` verifies
// against the file named in the statement's subject.
func (s *Signer) SignStatement(ctx context.Context, statement []byte) ([]byte, error) {
	if _, err := ParseStatement(statement); err != nil {
		return nil, err
	}
	return s.bundle(ctx, &sign.DSSEData{Data: statement, PayloadType: InTotoPayloadType}, false)
}

func (s *Signer) bundle(ctx context.Context, content sign.Content, prehashed bool) ([]byte, error) {
	kp := &keypair{s: s, prehashed: prehashed}
	pb, err := sign.Bundle(content, kp, sign.BundleOptions{Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	out, err := b.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return out, nil
}

// digestContent is a file known by its SHA-256: the message signature
// signs the digest itself (the file is not read again).
type digestContent struct{ digest []byte }

func (d *digestContent) PreAuthEncoding() []byte { return d.digest }

func (d *digestContent) Bundle(b *protobundle.Bundle, signature, digest []byte, alg protocommon.HashAlgorithm) {
	(&sign.PlainData{}).Bundle(b, signature, digest, alg)
}

// keypair is the Signer as sigstore-go's sign.Keypair. prehashed: the data
// handed to SignData is already the SHA-256 to sign.
type keypair struct {
	s         *Signer
	prehashed bool
}

func (k *keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}

func (k *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}

func (k *keypair) GetHint() []byte { return []byte(hintOf(k.s.fingerprint)) }

func (k *keypair) GetKeyAlgorithm() string { return "ECDSA" }

func (k *keypair) GetPublicKey() crypto.PublicKey { return k.s.key.Public() }

func (k *keypair) GetPublicKeyPem() (string, error) {
	b, err := k.s.PublicKeyPEM()
	return string(b), err
}

// SignData returns the ASN.1 ECDSA signature and the digest it signs.
func (k *keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	digest := data
	if !k.prehashed {
		sum := sha256.Sum256(data)
		digest = sum[:]
	}
	if len(digest) != sha256.Size {
		return nil, nil, errors.New("signing: not a SHA-256 digest")
	}
	sig, err := k.s.key.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return nil, nil, err
	}
	return sig, digest, nil
}
