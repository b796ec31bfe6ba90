package ociregistry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// ErrDeleteRefused is (wrapped in) the error of a deletion the registry
// does not allow.
var ErrDeleteRefused = errors.New("the registry does not allow deleting manifests")

// fail wraps err, from doing what, with the registry and repository and
// what the user can do about it. No credential is ever part of it: oras-go
// and the registries' error bodies carry none.
func (c *Client) fail(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("registry %s, repository %s: %s: %w%s", c.ref.Registry, c.ref.Repository, what, err, hint(err))
}

// hint is advice for the kinds of failure a user can fix, "" otherwise.
func hint(err error) string {
	var resp *errcode.ErrorResponse
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errStalled):
		return " (the registry stopped answering; no tag was changed: check the registry, then run the push again — what is already there is not sent again)"
	case errors.Is(err, ErrDeleteRefused):
		return ""
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return " (the registry asks for credentials and none were found for this host: log in with docker, podman or oras login, or set username and password)"
	case errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized:
		return " (the registry refused the credentials: check username and password, or this registry's entry in REGISTRY_AUTH_FILE or DOCKER_CONFIG's config.json)"
	case errors.As(err, &resp) && resp.StatusCode == http.StatusForbidden:
		return " (the credentials were accepted but may not do this in this repository: ask for push, pull or delete rights)"
	case errors.As(err, &resp) && resp.StatusCode == http.StatusMethodNotAllowed:
		return " (the registry does not allow this operation)"
	case errors.As(err, &unknownCA):
		return " (the registry's TLS certificate is signed by an authority this host does not trust: set ca_file to that CA's PEM file)"
	case errors.As(err, &badHost):
		return " (the registry's TLS certificate is not for this host name: use the name it was issued for)"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return " (the registry speaks plain HTTP: set plain_http = true, only for a registry on a trusted network)"
	case errors.As(err, &dnsErr):
		return " (unknown host: check the registry's name)"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return " (cannot reach the registry: check its host and port, and HTTPS_PROXY / NO_PROXY)"
	case errors.Is(err, context.DeadlineExceeded):
		return " (timed out)"
	case errors.Is(err, errdef.ErrNotFound):
		return ""
	}
	return ""
}

// isDeleteRefused reports whether err is a registry's refusal to delete:
// 405 Method Not Allowed or an UNSUPPORTED error code (CNCF Distribution
// without storage.delete.enabled), or 403/400 DENIED on a delete (registries
// that allow no deletion through this API).
func isDeleteRefused(err error) bool {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		if resp.StatusCode == http.StatusMethodNotAllowed {
			return true
		}
		for _, e := range resp.Errors {
			if e.Code == errcode.ErrorCodeUnsupported || e.Code == errcode.ErrorCodeDenied {
				return true
			}
		}
	}
	return errors.Is(err, errdef.ErrUnsupported)
}
