package ociregistry

import (
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry"
)

// Scheme prefixes an image reference where a URL is expected (the data
// source's `repository`, the builder's `iso_url`): `oci://host/repo@sha256:…`.
const Scheme = "oci://"

// Reference names a repository of a registry and, optionally, a tag or a
// manifest digest in it.
type Reference struct {
	// Registry is "host" or "host:port".
	Registry string
	// Repository is the path in the registry, e.g. "team/nodes".
	Repository string
	// Reference is a tag, a digest ("sha256:<hex>"), or "".
	Reference string
}

// ParseReference parses `host[:port]/path[:tag|@digest]`, with or without
// the `oci://` prefix. The grammar is the OCI distribution spec's (tags
// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, lower-case repository paths).
// A reference without a registry host (a Docker Hub short name such as
// `ubuntu`) is refused: the host must be named.
func ParseReference(s string) (Reference, error) {
	raw := strings.TrimPrefix(s, Scheme)
	if raw == "" {
		return Reference{}, fmt.Errorf("empty OCI reference (want host/repository, e.g. registry.example.org/team/nodes)")
	}
	if strings.Contains(raw, "://") {
		return Reference{}, fmt.Errorf("%q: only oci:// names a registry (want host/repository)", s)
	}
	host, _, _ := strings.Cut(raw, "/")
	if !strings.Contains(raw, "/") || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return Reference{}, fmt.Errorf("%q: name the registry host first (host[:port]/repository, e.g. registry.example.org/team/nodes)", s)
	}
	r, err := registry.ParseReference(raw)
	if err != nil {
		return Reference{}, fmt.Errorf("%q: %w", s, err)
	}
	return Reference{Registry: r.Registry, Repository: r.Repository, Reference: r.Reference}, nil
}

// IsReference reports whether s uses the oci:// scheme.
func IsReference(s string) bool { return strings.HasPrefix(s, Scheme) }

// Name is "registry/repository".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is "registry/repository", then ":tag" or "@digest" when set.
func (r Reference) String() string {
	switch {
	case r.Reference == "":
		return r.Name()
	case strings.Contains(r.Reference, ":"):
		return r.Name() + "@" + r.Reference
	default:
		return r.Name() + ":" + r.Reference
	}
}

// URL is String with the oci:// prefix.
func (r Reference) URL() string { return Scheme + r.String() }

// WithReference returns r naming ref (a tag or a digest) instead.
func (r Reference) WithReference(ref string) Reference {
	r.Reference = ref
	return r
}
