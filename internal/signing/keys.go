// Package signing signs and verifies what this plugin publishes about an
// image, the way cosign does with a key pair: a Sigstore bundle (v0.3, JSON)
// holding either a message signature over a file's SHA-256 (what `cosign
// verify-blob --key … --bundle …` checks) or a DSSE envelope over an in-toto
// Statement v1 (what `cosign verify-blob-attestation` and, for a registry
// manifest, `cosign verify-attestation` check). Bundles are made and read
// with github.com/sigstore/sigstore-go, its protobuf types and its verifier;
// this package adds key loading, fingerprints and error messages that name
// what was tried.
//
// Only key pairs are handled: the bundles carry no transparency-log entry
// and no certificate, so cosign verifies them with `--key` and
// `--insecure-ignore-tlog=true`. Keyless signing (Fulcio, Rekor) and KMS
// keys need online services and are not done here.
//
// Pure: no Packer, no SSH, no network. A key is read from a file or, as
// cosign's `env://NAME`, from an environment variable.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of private keys cosign writes (`cosign generate-key-pair`:
// a PKCS#8 key encrypted with scrypt and NaCl secretbox; cosign before 2.0
// wrote the COSIGN variant) and of the plain keys accepted.
const (
	pemEncryptedSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign   = "ENCRYPTED COSIGN PRIVATE KEY"
	pemPKCS8             = "PRIVATE KEY"
	pemEC                = "EC PRIVATE KEY"
	pemPublicKey         = "PUBLIC KEY"
)

// EnvPrefix marks a key reference that names an environment variable
// holding the PEM text, as cosign's `--key env://NAME` does.
const EnvPrefix = "env://"

// PasswordEnv is the environment variable cosign reads an encrypted key's
// password from; Password falls back to it.
const PasswordEnv = "COSIGN_PASSWORD"

// ErrPassword is wrapped by the error of a key that needs a password which
// was not given.
var ErrPassword = errors.New("the key is encrypted and no password was given")

// Password is the password of an encrypted private key. Its String method
// never shows the value, so that it cannot reach a log by accident.
type Password struct {
	value []byte
	set   bool
}

// NewPassword is a password that was given (it may be empty: cosign encrypts
// with an empty password when COSIGN_PASSWORD is set but empty).
func NewPassword(p string) Password { return Password{value: []byte(p), set: true} }

// PasswordFrom is option when it is not empty, else the value of
// COSIGN_PASSWORD when that variable is set (even empty), else no password.
func PasswordFrom(option string) Password {
	if option != "" {
		return NewPassword(option)
	}
	if v, ok := os.LookupEnv(PasswordEnv); ok {
		return NewPassword(v)
	}
	return Password{}
}

// String hides the value.
func (p Password) String() string {
	if !p.set {
		return "(no password)"
	}
	return "(password hidden)"
}

// GoString hides the value from %#v.
func (p Password) GoString() string { return p.String() }

// ReadKey returns the PEM text a key reference names: the file at ref, or
// the value of the environment variable NAME for "env://NAME". Errors name
// the reference, never the content.
func ReadKey(ref string) ([]byte, error) {
	if name, ok := strings.CutPrefix(ref, EnvPrefix); ok {
		if name == "" {
			return nil, fmt.Errorf("%q names no environment variable (use env://NAME)", ref)
		}
		v, ok := os.LookupEnv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("environment variable %s (from %s) is not set or empty", name, ref)
		}
		return []byte(v), nil
	}
	if ref == "" {
		return nil, errors.New("no key file given")
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Fingerprint is the lower-case hex SHA-256 of a public key's PKIX DER
// encoding. cosign's bundles carry the same bytes, base64-encoded, as the
// public key hint (`cosign bundle inspect` shows them in hex).
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// hintOf is the bundle's key hint for a fingerprint: base64 of its bytes,
// as cosign and sigstore-go write it.
func hintOf(fingerprint string) string {
	b, _ := hex.DecodeString(fingerprint)
	return base64.StdEncoding.EncodeToString(b)
}

// checkKeyType accepts what cosign signs and verifies the way this package
// does (ECDSA P-256 with SHA-256, cosign's default) and explains the rest.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ECDSA key on curve %s: only P-256 is supported (cosign generate-key-pair's default)", k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		// cosign signs and verifies Ed25519 keys as Ed25519ph (a SHA-512 of
		// the whole file), which a signature over the SHA-256 this plugin
		// computes cannot match.
		return errors.New("Ed25519 keys are not supported: cosign signs and verifies them as Ed25519ph; use an ECDSA P-256 key (cosign generate-key-pair's default)")
	case *rsa.PublicKey:
		return errors.New("RSA keys are not supported: use an ECDSA P-256 key (cosign generate-key-pair's default)")
	default:
		return fmt.Errorf("unsupported key type %T: use an ECDSA P-256 key (cosign generate-key-pair's default)", pub)
	}
}

// PublicKey is a key that verifies bundles.
type PublicKey struct {
	// Key is the parsed key (an *ecdsa.PublicKey on P-256).
	Key crypto.PublicKey
	// Fingerprint is Fingerprint(Key).
	Fingerprint string
	// Source is where it was read from (a file name or env://NAME).
	Source string
}

// String is "sha256:<fingerprint> (<source>)".
func (k *PublicKey) String() string {
	if k.Source == "" {
		return "sha256:" + k.Fingerprint
	}
	return fmt.Sprintf("sha256:%s (%s)", k.Fingerprint, k.Source)
}

// LoadPublicKey reads a PEM public key (what `cosign generate-key-pair`
// writes as cosign.pub) from a file or env://NAME.
func LoadPublicKey(ref string) (*PublicKey, error) {
	b, err := ReadKey(ref)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", ref, err)
	}
	k, err := ParsePublicKey(b, ref)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", ref, err)
	}
	return k, nil
}

// ParsePublicKey parses a PEM "PUBLIC KEY" block (PKIX). source only labels
// the key in messages.
func ParsePublicKey(pemBytes []byte, source string) (*PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found (expected a PUBLIC KEY, e.g. cosign.pub)")
	}
	if block.Type != pemPublicKey {
		return nil, fmt.Errorf("PEM block %q is not a PUBLIC KEY (give the public key, e.g. cosign.pub, not the private one)", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the public key: %w", err)
	}
	if err := checkKeyType(pub); err != nil {
		return nil, err
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return nil, err
	}
	return &PublicKey{Key: pub, Fingerprint: fp, Source: source}, nil
}

// parsePrivateKey parses cosign's encrypted key or a plain PKCS#8 or SEC 1
// EC key. Errors never contain the password or the key.
func parsePrivateKey(pemBytes []byte, password Password) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found (expected cosign's ENCRYPTED SIGSTORE PRIVATE KEY or a PKCS#8 PRIVATE KEY)")
	}
	var key any
	var err error
	switch block.Type {
	case pemEncryptedSigstore, pemEncryptedCosign:
		if !password.set {
			return nil, fmt.Errorf("%w: set key_password or the %s environment variable", ErrPassword, PasswordEnv)
		}
		der, derr := encrypted.Decrypt(block.Bytes, password.value)
		if derr != nil {
			// The library says "encrypted: decryption failed" for a wrong
			// password; say it without echoing anything.
			return nil, fmt.Errorf("decrypting the key failed: wrong password? (%v)", derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemEC:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case pemPublicKey:
		return nil, errors.New("this is a public key: signing needs the private key (cosign.key)")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("PKCS#8 keys encrypted with openssl are not supported: use cosign's key (cosign generate-key-pair or cosign import-key-pair) or an unencrypted PKCS#8 key")
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (expected cosign's ENCRYPTED SIGSTORE PRIVATE KEY or a PKCS#8 PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	if err := checkKeyType(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}
