// Package sbom makes the software bill of materials of an image from the
// guest facts collected inside it at build time: CycloneDX 1.6 JSON
// (CycloneDX) and SPDX 2.3 JSON (SPDX), each written with the format's own
// library, with package URLs made by packageurl-go. Pure: facts in, document
// bytes out; nothing here reads the image or the guest.
package sbom

import (
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/package-url/packageurl-go"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
)

// Input is what a document describes.
type Input struct {
	// Image is the document's subject.
	Image Image
	// Facts are the guest facts; their packages become the components.
	Facts *artifactstate.Facts
	// Tool is the program that writes the document (this plugin).
	Tool Tool
	// Created is the document's creation time (UTC, to the second).
	Created time.Time
}

// Image is the image file an SBOM describes.
type Image struct {
	// Name is the file name, e.g. "node.qcow2".
	Name string
	// SHA256 is the file's SHA-256 in lower-case hex.
	SHA256 string
}

// Tool names the program that writes the document.
type Tool struct {
	Name    string
	Version string
}

func (in *Input) check() error {
	switch {
	case in.Image.Name == "":
		return errors.New("sbom: the image name is empty")
	case len(in.Image.SHA256) != 64:
		return errors.New("sbom: the image's SHA-256 is not 64 hex digits")
	case in.Facts == nil:
		return errors.New("sbom: no guest facts")
	}
	return nil
}

// created is Created in UTC to the second, as both formats write it.
func (in *Input) created() string { return in.Created.UTC().Format(time.RFC3339) }

// documentUUID is a name-based (SHA-1, RFC 9562 version 5) UUID of the
// image digest and creation time: the same image described at the same
// time gets the same serial number, so documents are reproducible.
func (in *Input) documentUUID() string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:sha256:"+in.Image.SHA256+"@"+in.created())).String()
}

// Distro is the purl "distro" qualifier of the guest: os-release ID and
// VERSION_ID joined by "-" ("debian-12", "ubuntu-24.04"), with
// VERSION_CODENAME in place of a missing VERSION_ID (Debian testing); "" when
// the ID is unknown. This is the form vulnerability scanners (grype, trivy)
// match on.
func Distro(osRelease map[string]string) string {
	id := strings.ToLower(osRelease["ID"])
	v := osRelease["VERSION_ID"]
	if v == "" {
		v = osRelease["VERSION_CODENAME"]
	}
	if id == "" || v == "" {
		return id
	}
	return id + "-" + v
}

// PackageURL returns the package URL of an installed package
// (https://github.com/package-url/purl-spec, types "deb" and "rpm"), and
// false when the facts do not say enough to make one (no package manager or
// no os-release ID).
//
// A dpkg package is pkg:deb/<ID>/<name>@<version>?arch=<arch>&distro=<distro>,
// e.g. pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12;
// the version keeps its epoch. When the package was built from a source
// package of another name or version, the "upstream" qualifier names it
// ("openssl" for libssl3, "glibc@2.36-9" when the versions differ too), as
// syft writes it and grype reads it: Debian's and Ubuntu's security data are
// keyed by source package. An rpm package carries its epoch in the "epoch"
// qualifier, as the purl spec says for rpm.
func PackageURL(f *artifactstate.Facts, p artifactstate.Package) (packageurl.PackageURL, bool) {
	ns := strings.ToLower(f.OSRelease["ID"])
	if ns == "" || p.Name == "" {
		return packageurl.PackageURL{}, false
	}
	q := map[string]string{}
	if p.Architecture != "" {
		q["arch"] = p.Architecture
	}
	if d := Distro(f.OSRelease); d != "" {
		q["distro"] = d
	}
	var typ, version string
	switch f.PackageManager {
	case artifactstate.PackageManagerDpkg:
		typ, version = packageurl.TypeDebian, p.Version
		src, srcVersion := p.Source, p.SourceVersion
		if src == "" {
			src = p.Name
		}
		switch {
		case srcVersion != "" && srcVersion != p.Version:
			q["upstream"] = src + "@" + srcVersion
		case src != p.Name:
			q["upstream"] = src
		}
	case artifactstate.PackageManagerRPM:
		typ, version = packageurl.TypeRPM, p.Version
		if epoch, rest, ok := strings.Cut(p.Version, ":"); ok {
			q["epoch"], version = epoch, rest
		}
	default:
		return packageurl.PackageURL{}, false
	}
	return *packageurl.NewPackageURL(typ, ns, p.Name, version, packageurl.QualifiersFromMap(q), ""), true
}
