//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Signing
//go:generate go tool packer-sdc struct-markdown

// Package signconfig is the signing configuration that the cloudimg-metadata
// and cloudimg-oci post-processors share, so that `signing_mode`,
// `key_file`, `key_password` and `verifier` mean the same in both. Each
// squashes Signing into its own configuration and signs with what Load
// returns; internal/signing does the work.
package signconfig

import (
	"errors"
	"fmt"
	"os"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// Signing modes of signing_mode.
const (
	ModeNone = "none"
	ModeKey  = "key"
)

// Signing is how a post-processor signs.
type Signing struct {
	// How to sign: `"none"` (nothing is signed) or `"key"` (with
	// `key_file`). Default `"key"` when `key_file` is set, else `"none"`.
	// Packer's own `provenance` post-processor names this option alike; its
	// `kms` and `keyless` modes need Sigstore or KMS services and are not
	// offered here (sign keyless with cosign afterwards: see Signing and
	// verifying).
	SigningMode string `mapstructure:"signing_mode"`
	// The private key that signs, as cosign takes it: a file — the
	// encrypted `cosign.key` that `cosign generate-key-pair` writes, or an
	// unencrypted PKCS#8 PEM ECDSA P-256 key — or `env://NAME` for the PEM
	// text in the environment variable `NAME`. (Packer's `provenance`
	// post-processor calls its key `key` or `signer`, which there may also
	// be a KMS URI and must be unencrypted; this one is a file, possibly
	// cosign's encrypted key, hence `key_file` and `key_password`.)
	KeyFile string `mapstructure:"key_file"`
	// The password of an encrypted `key_file`. Default: the
	// `COSIGN_PASSWORD` environment variable, as cosign reads it. Pass it
	// from a `sensitive` variable; it is written to no log, document or
	// error.
	KeyPassword string `mapstructure:"key_password"`
	// Public key files (PEM, e.g. `cosign.pub`, or `env://NAME`) every
	// signature is verified against once made; the build fails when the
	// key that signed is none of them, so that an image is never published
	// signed with a key its consumers' `verify_key` would refuse. Packer's
	// `provenance` post-processor calls this `verifier` (one key); here it
	// is a list, as `verify_key` is. Default: the signing key's own public
	// key.
	Verifier []string `mapstructure:"verifier"`
}

// Load checks the options and loads the key, so that a wrong path or
// password fails before the build starts; it fills SigningMode's default.
// It returns a nil signer when nothing is to be signed. The passwords (the
// option and COSIGN_PASSWORD) are registered with the SDK's log filter
// first. Errors name the option and never hold the password.
func (c *Signing) Load() (*signing.Signer, []*signing.PublicKey, error) {
	if c.KeyPassword != "" {
		packersdk.LogSecretFilter.Set(c.KeyPassword)
	}
	if v := os.Getenv(signing.PasswordEnv); v != "" {
		packersdk.LogSecretFilter.Set(v)
	}
	switch c.SigningMode {
	case "":
		c.SigningMode = ModeNone
		if c.KeyFile != "" {
			c.SigningMode = ModeKey
		}
	case ModeNone, ModeKey:
	case "kms", "keyless":
		return nil, nil, fmt.Errorf("signing_mode: %q needs a KMS or Sigstore's online services (Fulcio, Rekor), which this plugin does not use: sign with a key (signing_mode = \"key\", key_file), or sign keyless afterwards with cosign (see the documentation's Signing and verifying)", c.SigningMode)
	default:
		return nil, nil, fmt.Errorf("signing_mode: %q is not one of %s, %s", c.SigningMode, ModeNone, ModeKey)
	}
	if c.SigningMode == ModeNone {
		if c.KeyFile != "" || c.KeyPassword != "" || len(c.Verifier) > 0 {
			return nil, nil, errors.New("signing_mode = \"none\": remove key_file, key_password and verifier, or set signing_mode = \"key\"")
		}
		return nil, nil, nil
	}
	if c.KeyFile == "" {
		return nil, nil, errors.New("key_file: required with signing_mode = \"key\" (the private key, e.g. cosign.key from cosign generate-key-pair, or env://NAME)")
	}
	s, err := signing.LoadSigner(c.KeyFile, signing.PasswordFrom(c.KeyPassword))
	if err != nil {
		return nil, nil, fmt.Errorf("key_file: %w", err)
	}
	var verifiers []*signing.PublicKey
	for i, ref := range c.Verifier {
		k, err := signing.LoadPublicKey(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("verifier[%d]: %w", i, err)
		}
		verifiers = append(verifiers, k)
	}
	if len(verifiers) == 0 {
		verifiers = []*signing.PublicKey{s.PublicKey()}
	}
	return s, verifiers, nil
}
