//go:build e2e

package e2e

// Checks of the SBOM and the provenance the metadata post-processor writes
// beside each image, and the probe package that the basic scenario
// installs so that its SBOM must list a package a provisioner installed.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/docschema"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/provenance"
)

// scSidecar is one document of an image, as the metadata file and
// index.json list it.
type scSidecar struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// checkDocuments checks the CycloneDX SBOM and the provenance beside image:
// both exist, follow their formats (the official CycloneDX 1.6 JSON Schema;
// the in-toto and SLSA Go types), name the image and its sha256, and are
// listed with their real sha256 in the metadata file's sidecars. The
// provenance's source image has the test image's sha256. It returns the
// SBOM.
func checkDocuments(t testing.TB, image, sourceSHA256 string, m *scMetadata) *cdx.BOM {
	t.Helper()
	sha := fileSHA256(t, image)
	listed := map[string]scSidecar{}
	for _, sc := range m.Sidecars {
		listed[sc.Kind] = sc
	}
	for kind, suffix := range map[string]string{"sbom-cyclonedx": ".cdx.json", "provenance": ".intoto.json"} {
		sc, ok := listed[kind]
		if !ok {
			t.Errorf("metadata: sidecars %+v list no %s", m.Sidecars, kind)
			continue
		}
		if sc.Path != filepath.Base(image)+suffix || sc.SHA256 != fileSHA256(t, image+suffix) {
			t.Errorf("metadata: %s sidecar %+v, want %s with the file's sha256", kind, sc, filepath.Base(image)+suffix)
		}
	}

	b := mustReadFile(t, image+".cdx.json")
	if err := docschema.Validate(docschema.CycloneDX16, b); err != nil {
		t.Errorf("SBOM %s.cdx.json: %v", image, err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("SBOM %s.cdx.json: %v", image, err)
	}
	if c := bom.Metadata.Component; c == nil || c.Name != filepath.Base(image) || c.Hashes == nil || (*c.Hashes)[0].Value != sha {
		t.Errorf("SBOM: subject %+v, want %s with sha256 %s", c, filepath.Base(image), sha)
	}
	if bom.Components == nil || len(*bom.Components) < 100 {
		t.Fatalf("SBOM: fewer than 100 components, want every package of the guest")
	}

	st, pred, err := provenance.Parse(mustReadFile(t, image+".intoto.json"))
	if err != nil {
		t.Fatalf("provenance %s.intoto.json: %v", image, err)
	}
	if s := st.GetSubject(); len(s) != 1 || s[0].GetName() != filepath.Base(image) || s[0].GetDigest()["sha256"] != sha {
		t.Errorf("provenance: subject %v, want %s with sha256 %s", s, filepath.Base(image), sha)
	}
	var src bool
	for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
		if d.GetName() == "source-image" {
			src = d.GetDigest()["sha256"] == sourceSHA256
		}
	}
	if !src {
		t.Errorf("provenance: no source-image dependency with the test image's sha256 %s: %v", sourceSHA256, pred.GetBuildDefinition().GetResolvedDependencies())
	}
	if pred.GetRunDetails().GetMetadata().GetStartedOn() == nil || pred.GetRunDetails().GetMetadata().GetFinishedOn() == nil {
		t.Errorf("provenance: run details without start or finish: %v", pred.GetRunDetails())
	}
	return &bom
}

// probePackage is the Debian package the basic scenario's provisioner
// installs: a fresh version each run, so only this build can have put it in
// the SBOM.
type probePackage struct {
	deb           string // the .deb file on the host
	name, version string
	source        string // its source package
}

// makeProbePackage builds the probe package (architecture all, no files)
// with dpkg-deb in dir.
func makeProbePackage(t testing.TB, dir string) *probePackage {
	t.Helper()
	p := &probePackage{name: "cloudimg-e2e-probe", version: "1.0+e2e" + randHex(4) + "-1", source: "cloudimg-e2e-probe-src"}
	root := filepath.Join(dir, "probe-deb")
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := "Package: " + p.name + "\nVersion: " + p.version + "\nSource: " + p.source +
		"\nArchitecture: all\nMaintainer: cloudimg e2e <e2e@example.invalid>\n" +
		"Description: probe of the cloudimg e2e basic scenario\n The SBOM must list it.\n"
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	p.deb = filepath.Join(dir, p.name+".deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, p.deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb (install dpkg): %v\n%s", err, out)
	}
	return p
}

// checkProbeInSBOM checks that the SBOM lists the probe package with its
// version and the package URL scanners match on.
func checkProbeInSBOM(t testing.TB, bom *cdx.BOM, p *probePackage, distro string) {
	t.Helper()
	// The purl spec percent-encodes "+" in a version.
	want := "pkg:deb/debian/" + p.name + "@" + strings.ReplaceAll(p.version, "+", "%2B") + "?arch=all&distro=" + distro + "&upstream=" + p.source
	for _, c := range *bom.Components {
		if c.Name == p.name {
			if c.Version != p.version || c.PackageURL != want {
				t.Errorf("SBOM: the probe package as %s %s (%s), want %s %s (%s)", c.Name, c.Version, c.PackageURL, p.name, p.version, want)
			}
			return
		}
	}
	t.Errorf("SBOM: no component %s (the package the provisioner installed)", p.name)
}
