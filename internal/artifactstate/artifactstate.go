// Package artifactstate names what a builder's artifact tells the cloudimg
// post-processors through packersdk.Artifact.State, and the shape of the
// guest facts (Facts) that travel that way. A builder that sets these keys gets the
// full metadata, SBOM and provenance from the cloudimg-metadata
// post-processor, whatever its builder id; the post-processor imports no
// builder.
//
// Every value is a string, so that it survives Packer's RPC between plugins
// unchanged. A key that is absent (or empty) means "unknown".
package artifactstate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Keys of Artifact.State.
const (
	// SourceImageURL is the URL (or path) of the image the build started
	// from.
	SourceImageURL = "source_image_url"
	// SourceImageChecksum is that image's checksum as the template gave it,
	// "<algorithm>:<hex>" (e.g. "sha256:…"), or "none" or "" when not
	// checked.
	SourceImageChecksum = "source_image_checksum"
	// GuestFacts is the JSON of Facts (plus whatever else the
	// collecting provisioner adds, e.g. its reset report), written by the
	// cloudimg-cloudinit-reset provisioner and handed on by the builder.
	GuestFacts = "guest_facts"
	// Format is the image file's format as configured ("qcow2", "raw").
	Format = "format"
	// StartedAt is when the build started, RFC 3339 in UTC.
	StartedAt = "started_at"
	// Firmware is "bios" or "uefi".
	Firmware = "firmware"
	// Arch is the guest architecture the image is for, in Debian's terms:
	// "amd64" or "arm64".
	Arch = "arch"
	// SourceImage is the JSON of SourceImageInfo when the build started
	// from an image pulled from an OCI registry (`iso_url = "oci://…"`):
	// what the image's annotations said of it.
	SourceImage = "source_image"
)

// SourceImageInfo describes a source image pulled from a registry, as
// the cloudimg-oci post-processor annotated it.
type SourceImageInfo struct {
	// Name, SHA256 (of the disk, hex), BuildID (Packer run UUID) and
	// Labels are the base image's.
	Name    string            `json:"name"`
	SHA256  string            `json:"sha256"`
	BuildID string            `json:"build_id,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Reference is the manifest pulled, oci://host/repo@sha256:….
	Reference string `json:"reference"`
}

// Stater is the part of packersdk.Artifact this package reads.
type Stater interface {
	State(name string) interface{}
}

// String returns the string under key, or "" when it is absent or not a
// string.
func String(a Stater, key string) string {
	s, _ := a.State(key).(string)
	return s
}

// Time returns the RFC 3339 time under key, or the zero time when it is
// absent or malformed.
func Time(a Stater, key string) time.Time {
	t, err := time.Parse(time.RFC3339, String(a, key))
	if err != nil {
		return time.Time{}
	}
	return t
}

// Facts are facts about the guest read inside it at the end of the
// build (the cloudimg-cloudinit-reset provisioner collects them). The JSON
// shape is stable: fields are only ever added.
type Facts struct {
	// OSRelease holds every key of the guest's /etc/os-release
	// (os-release(5)), e.g. ID "debian", VERSION_ID "12".
	OSRelease map[string]string `json:"os_release"`
	// Kernel is `uname -r`.
	Kernel string `json:"kernel"`
	// CloudInitVersion is "" when cloud-init is absent.
	CloudInitVersion string `json:"cloud_init_version"`
	// PackageManager is what listed Packages: PackageManagerDpkg,
	// PackageManagerRPM, or "" when the guest has neither (Packages is
	// then empty).
	PackageManager string `json:"package_manager,omitempty"`
	// Packages are the installed packages, sorted by name then version.
	Packages []Package `json:"packages"`
}

// Package managers of Facts.PackageManager.
const (
	PackageManagerDpkg = "dpkg"
	PackageManagerRPM  = "rpm"
)

// Package is one installed package, in the package manager's own terms
// (for dpkg: the fields of the same names in dpkg-query(1)).
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Architecture is the package's architecture ("amd64", "all"); "" when
	// not collected.
	Architecture string `json:"architecture,omitempty"`
	// Source and SourceVersion name the source package it was built from
	// (dpkg's source:Package and source:Version); "" when not collected.
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
}

// ParseFacts decodes the GuestFacts value of an artifact's State.
func ParseFacts(s string) (*Facts, error) {
	var f Facts
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return nil, fmt.Errorf("the guest facts are not valid JSON: %w", err)
	}
	return &f, nil
}

// DocumentSuffixes end the names of the documents the cloudimg-metadata
// post-processor writes beside an image: its metadata, SBOM (CycloneDX,
// SPDX) and provenance.
var DocumentSuffixes = []string{".metadata.json", ".cdx.json", ".spdx.json", ".intoto.json"}

// ImageFiles are the image files among an artifact's files: the artifact's
// id alone when it is one of its files (a cloudimg-kvm artifact, whose
// other file is the UEFI variables store), else every file whose name ends
// in none of DocumentSuffixes.
func ImageFiles(files []string, id string) []string {
	if slices.Contains(files, id) {
		return []string{id}
	}
	var out []string
	for _, f := range files {
		if !slices.ContainsFunc(DocumentSuffixes, func(s string) bool { return strings.HasSuffix(f, s) }) {
			out = append(out, f)
		}
	}
	return out
}
