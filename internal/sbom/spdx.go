package sbom

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// noAssertion is SPDX's "no assertion made" value.
const noAssertion = "NOASSERTION"

// SPDX returns the SPDX 2.3 JSON SBOM of the image: the document DESCRIBES
// the image package (with its SHA-256), which CONTAINS the guest's operating
// system (primary purpose OPERATING_SYSTEM) and every installed package, each
// with its package URL as a PACKAGE-MANAGER external reference and its
// source package in sourceInfo. Licenses are NOASSERTION: dpkg does not
// record them in machine-readable form. The document is deterministic for a
// given Input.
func SPDX(in Input) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	f := in.Facts
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      in.Image.Name,
		DocumentNamespace: "urn:uuid:" + in.documentUUID(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: in.Tool.Name + "-" + in.Tool.Version}},
			Created:  in.created(),
		},
	}
	image := common.ElementID("Image")
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName:               in.Image.Name,
		PackageSPDXIdentifier:     image,
		PackageFileName:           in.Image.Name,
		PackageDownloadLocation:   noAssertion,
		IsFilesAnalyzedTagPresent: true,
		PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: in.Image.SHA256}},
		PrimaryPackagePurpose:     "FILE",
	})
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(image)), Relationship: common.TypeRelationshipDescribe,
	})
	contains := func(id common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(image)), RefB: common.MakeDocElementID("", string(id)), Relationship: common.TypeRelationshipContains,
		})
	}
	if id := f.OSRelease["ID"]; id != "" {
		os := &spdx.Package{
			PackageName:               id,
			PackageSPDXIdentifier:     "OperatingSystem",
			PackageVersion:            f.OSRelease["VERSION_ID"],
			PackageDescription:        f.OSRelease["PRETTY_NAME"],
			PackageDownloadLocation:   noAssertion,
			IsFilesAnalyzedTagPresent: true,
			PrimaryPackagePurpose:     "OPERATING_SYSTEM",
		}
		doc.Packages = append(doc.Packages, os)
		contains(os.PackageSPDXIdentifier)
	}
	for i, p := range f.Packages {
		sp := &spdx.Package{
			PackageName:               p.Name,
			PackageSPDXIdentifier:     common.ElementID("Package-" + strconv.Itoa(i+1) + "-" + idUnsafe.ReplaceAllString(p.Name, "-")),
			PackageVersion:            p.Version,
			PackageDownloadLocation:   noAssertion,
			IsFilesAnalyzedTagPresent: true,
			PackageLicenseConcluded:   noAssertion,
			PackageLicenseDeclared:    noAssertion,
			PackageCopyrightText:      noAssertion,
		}
		if p.Source != "" {
			sp.PackageSourceInfo = fmt.Sprintf("built from source package %s %s", p.Source, p.SourceVersion)
		}
		if p.Architecture != "" {
			sp.PackageComment = "architecture: " + p.Architecture
		}
		if u, ok := PackageURL(f, p); ok {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: u.ToString(),
			}}
		}
		doc.Packages = append(doc.Packages, sp)
		contains(sp.PackageSPDXIdentifier)
	}
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return nil, fmt.Errorf("sbom: SPDX: %w", err)
	}
	return buf.Bytes(), nil
}

// idUnsafe matches what an SPDX identifier may not contain (it is
// "SPDXRef-" then letters, digits, "." and "-").
var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)
