//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config
//go:generate go tool packer-sdc struct-markdown

// Package ociconfig is the registry access configuration that the
// cloudimg-oci post-processor, the cloudimg-repository data source and the
// cloudimg-kvm builder share, so that the same options (`username`,
// `password`, `ca_file`, `plain_http`) mean the same in all three. Each
// squashes Config into its own configuration; internal/ociregistry does the
// work.
package ociconfig

import (
	"fmt"
	"os"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

// Config is how to reach and log in to an OCI registry. Without `username`,
// the credentials come from where podman, skopeo, docker and oras keep them:
// the containers auth file (`REGISTRY_AUTH_FILE`, else
// `$XDG_RUNTIME_DIR/containers/auth.json`), then Docker's
// `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`) with its
// credential helpers (`credHelpers`, `credsStore`). A proxy comes from
// `HTTPS_PROXY` / `NO_PROXY`.
type Config struct {
	// Registry user name; with `password`, used instead of any credentials
	// file.
	Username string `mapstructure:"username"`
	// Registry password or token for `username`. Sensitive: it appears in
	// no log, document or error of this plugin. Mark the variable that
	// holds it `sensitive = true` so that Packer hides it too.
	Password string `mapstructure:"password"`
	// PEM file of certificate authorities to trust besides the system's,
	// for a registry whose TLS certificate a private CA signed.
	CAFile string `mapstructure:"ca_file"`
	// Talk plain HTTP instead of HTTPS. Only for a registry on the loopback
	// or a network you trust: credentials and images travel in clear.
	PlainHTTP bool `mapstructure:"plain_http"`
}

// Validate checks the options; every error names its option.
func (c *Config) Validate() []error {
	var errs []error
	if c.Password != "" && c.Username == "" {
		errs = append(errs, fmt.Errorf("password: set username too (or drop both and use a credentials file)"))
	}
	if c.Username != "" && c.Password == "" {
		errs = append(errs, fmt.Errorf("username: set password too"))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("ca_file: %v", err))
		}
	}
	return errs
}

// Options are the ociregistry options of c.
func (c *Config) Options() ociregistry.Options {
	return ociregistry.Options{
		Username:  c.Username,
		Password:  c.Password,
		CAFile:    c.CAFile,
		PlainHTTP: c.PlainHTTP,
		UserAgent: "packer-plugin-cloudimg/" + version.PluginVersion.FormattedVersion(),
	}
}
