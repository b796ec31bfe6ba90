package sbom

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/docschema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func fixture(t *testing.T, name string) *artifactstate.Facts {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "facts", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := artifactstate.ParseFacts(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func input(f *artifactstate.Facts) Input {
	return Input{
		Image:   Image{Name: "node.qcow2", SHA256: strings.Repeat("ab", 32)},
		Facts:   f,
		Tool:    Tool{Name: "packer-plugin-cloudimg", Version: "0.1.0"},
		Created: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC),
	}
}

func TestPackageURL(t *testing.T) {
	deb := func(id, version string) *artifactstate.Facts {
		return &artifactstate.Facts{PackageManager: artifactstate.PackageManagerDpkg, OSRelease: map[string]string{"ID": id, "VERSION_ID": version}}
	}
	for _, tc := range []struct {
		facts *artifactstate.Facts
		pkg   artifactstate.Package
		want  string
	}{
		{deb("debian", "12"), artifactstate.Package{Name: "openssl", Version: "3.0.15-1~deb12u1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.15-1~deb12u1"},
			"pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"},
		{deb("debian", "12"), artifactstate.Package{Name: "libssl3", Version: "3.0.15-1~deb12u1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.15-1~deb12u1"},
			"pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl"},
		{deb("debian", "12"), artifactstate.Package{Name: "login", Version: "1:4.13+dfsg1-1+b1", Architecture: "amd64", Source: "shadow", SourceVersion: "1:4.13+dfsg1-1"},
			"pkg:deb/debian/login@1:4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12&upstream=shadow%401:4.13%2Bdfsg1-1"},
		{deb("ubuntu", "24.04"), artifactstate.Package{Name: "libstdc++6", Version: "14-20240412-0ubuntu1", Architecture: "amd64", Source: "gcc-14", SourceVersion: "14-20240412-0ubuntu1"},
			"pkg:deb/ubuntu/libstdc%2B%2B6@14-20240412-0ubuntu1?arch=amd64&distro=ubuntu-24.04&upstream=gcc-14"},
		// Collected before architecture and source were (old facts).
		{deb("debian", "12"), artifactstate.Package{Name: "zsh", Version: "5.9-4"}, "pkg:deb/debian/zsh@5.9-4?distro=debian-12"},
		// Debian testing has no VERSION_ID.
		{&artifactstate.Facts{PackageManager: "dpkg", OSRelease: map[string]string{"ID": "debian", "VERSION_CODENAME": "forky"}},
			artifactstate.Package{Name: "tzdata", Version: "2025b-1", Architecture: "all"}, "pkg:deb/debian/tzdata@2025b-1?arch=all&distro=debian-forky"},
		{&artifactstate.Facts{PackageManager: "rpm", OSRelease: map[string]string{"ID": "fedora", "VERSION_ID": "41"}},
			artifactstate.Package{Name: "openssl", Version: "1:3.2.2-9.fc41", Architecture: "x86_64"}, "pkg:rpm/fedora/openssl@3.2.2-9.fc41?arch=x86_64&distro=fedora-41&epoch=1"},
	} {
		u, ok := PackageURL(tc.facts, tc.pkg)
		if !ok || u.ToString() != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.pkg.Name, u.ToString(), ok, tc.want)
			continue
		}
		// Round trip: the library parses back the same package.
		back, err := packageurl.FromString(u.ToString())
		if err != nil {
			t.Errorf("%s: parse: %v", tc.want, err)
			continue
		}
		if back.Name != tc.pkg.Name || back.ToString() != tc.want || back.Qualifiers.Map()["arch"] != tc.pkg.Architecture {
			t.Errorf("%s: parsed back as %+v", tc.want, back)
		}
		if tc.facts.PackageManager == "dpkg" && back.Version != tc.pkg.Version {
			t.Errorf("%s: version %q, want %q", tc.want, back.Version, tc.pkg.Version)
		}
	}
	for _, f := range []*artifactstate.Facts{
		{OSRelease: map[string]string{"ID": "alpine"}},           // no package manager
		{PackageManager: "dpkg", OSRelease: map[string]string{}}, // no os-release ID
	} {
		if u, ok := PackageURL(f, artifactstate.Package{Name: "x", Version: "1"}); ok {
			t.Errorf("%+v: %s, want none", f, u.ToString())
		}
	}
}

func TestDistro(t *testing.T) {
	for want, osr := range map[string]map[string]string{
		"debian-12":    {"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"},
		"ubuntu-24.04": {"ID": "ubuntu", "VERSION_ID": "24.04"},
		"debian-forky": {"ID": "debian", "VERSION_CODENAME": "forky"},
		"nixos":        {"ID": "nixos"},
		"":             {},
	} {
		if got := Distro(osr); got != want {
			t.Errorf("%v: %q, want %q", osr, got, want)
		}
	}
}

// TestDocuments: golden documents from the fixtures' facts, each valid
// against its format's official schema and read back by its library with
// every package.
func TestDocuments(t *testing.T) {
	for _, name := range []string{"debian-12", "debian-13", "ubuntu-24.04"} {
		t.Run(name, func(t *testing.T) {
			f := fixture(t, name)
			in := input(f)
			openssl, ok := PackageURL(f, packageNamed(t, f, "openssl"))
			if !ok {
				t.Fatal("no purl for openssl")
			}

			c, err := CycloneDX(in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".cdx.json", c)
			if err := docschema.Validate(docschema.CycloneDX16, c); err != nil {
				t.Error(err)
			}
			var bom cdx.BOM
			if err := cdx.NewBOMDecoder(bytes.NewReader(c), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
				t.Fatal(err)
			}
			if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata.Component.Name != "node.qcow2" || (*bom.Metadata.Component.Hashes)[0].Value != in.Image.SHA256 {
				t.Errorf("subject %+v (spec %v)", bom.Metadata.Component, bom.SpecVersion)
			}
			if tools := *bom.Metadata.Tools.Components; tools[0].Name != "packer-plugin-cloudimg" || tools[0].Version != "0.1.0" {
				t.Errorf("tool %+v", tools)
			}
			purls := map[string]bool{}
			for _, comp := range *bom.Components {
				purls[comp.PackageURL] = true
			}
			if len(*bom.Components) != len(f.Packages)+1 || !purls[openssl.ToString()] {
				t.Errorf("%d components (want %d), openssl %s among them: %v", len(*bom.Components), len(f.Packages)+1, openssl.ToString(), purls[openssl.ToString()])
			}
			if os := (*bom.Components)[0]; os.Type != cdx.ComponentTypeOS || os.Name != f.OSRelease["ID"] || os.Version != f.OSRelease["VERSION_ID"] {
				t.Errorf("operating system %+v", os)
			}

			s, err := SPDX(in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".spdx.json", s)
			if err := docschema.Validate(docschema.SPDX23, s); err != nil {
				t.Error(err)
			}
			doc, err := spdxjson.Read(bytes.NewReader(s))
			if err != nil {
				t.Fatal(err)
			}
			if doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) != len(f.Packages)+2 || doc.Packages[0].PackageChecksums[0].Value != in.Image.SHA256 {
				t.Errorf("SPDX %s with %d packages, image %+v", doc.SPDXVersion, len(doc.Packages), doc.Packages[0])
			}
			found := false
			for _, p := range doc.Packages {
				for _, r := range p.PackageExternalReferences {
					found = found || r.Locator == openssl.ToString()
				}
			}
			if !found {
				t.Errorf("no SPDX package with %s", openssl.ToString())
			}
		})
	}
}

func packageNamed(t *testing.T, f *artifactstate.Facts, name string) artifactstate.Package {
	t.Helper()
	for _, p := range f.Packages {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no package %s in the fixture", name)
	return artifactstate.Package{}
}

// A guest without a package list (no dpkg-query) still gets valid
// documents: the operating system alone.
func TestDocumentsWithoutPackages(t *testing.T) {
	in := input(&artifactstate.Facts{OSRelease: map[string]string{"ID": "alpine", "VERSION_ID": "3.21"}, Packages: []artifactstate.Package{}})
	c, err := CycloneDX(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.Validate(docschema.CycloneDX16, c); err != nil {
		t.Error(err)
	}
	s, err := SPDX(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.Validate(docschema.SPDX23, s); err != nil {
		t.Error(err)
	}
}

// The schemas do catch a broken document (the validation can fail).
func TestSchemasRejectBrokenDocuments(t *testing.T) {
	c, err := CycloneDX(input(fixture(t, "debian-12")))
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.Validate(docschema.CycloneDX16, bytes.Replace(c, []byte(`"type": "library"`), []byte(`"type": "deb-package"`), 1)); err == nil {
		t.Error("CycloneDX: an unknown component type passed")
	}
	s, err := SPDX(input(fixture(t, "debian-12")))
	if err != nil {
		t.Fatal(err)
	}
	if err := docschema.Validate(docschema.SPDX23, bytes.Replace(s, []byte(`"SPDXID": "SPDXRef-DOCUMENT",`), nil, 1)); err == nil {
		t.Error("SPDX: a document without SPDXID passed")
	}
}

func TestInputErrors(t *testing.T) {
	for _, in := range []Input{
		{Image: Image{SHA256: strings.Repeat("a", 64)}, Facts: &artifactstate.Facts{}},
		{Image: Image{Name: "x", SHA256: "abc"}, Facts: &artifactstate.Facts{}},
		{Image: Image{Name: "x", SHA256: strings.Repeat("a", 64)}},
	} {
		if _, err := CycloneDX(in); err == nil {
			t.Errorf("CycloneDX(%+v): no error", in)
		}
		if _, err := SPDX(in); err == nil {
			t.Errorf("SPDX(%+v): no error", in)
		}
	}
}
