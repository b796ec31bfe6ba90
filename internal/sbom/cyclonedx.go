package sbom

import (
	"bytes"
	"fmt"
	"strconv"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// Names of the CycloneDX properties that carry what the format has no field
// for. The "cloudimg:" namespace is this plugin's.
const (
	PropertyArchitecture  = "cloudimg:package:architecture"
	PropertySource        = "cloudimg:package:source"
	PropertySourceVersion = "cloudimg:package:source_version"
	PropertyKernel        = "cloudimg:guest:kernel"
)

// CycloneDX returns the CycloneDX 1.6 JSON SBOM of the image: the metadata
// component is the image file (type "file", with its SHA-256), the tool is
// in.Tool, and the components are the guest's operating system (type
// "operating-system", name and version from os-release ID and VERSION_ID)
// and every installed package (type "library", with its package URL, which
// is also its bom-ref). The document is deterministic for a given Input.
func CycloneDX(in Input) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	f := in.Facts
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + in.documentUUID()
	bom.Metadata = &cdx.Metadata{
		Timestamp: in.created(),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: in.Tool.Name, Version: in.Tool.Version,
		}}},
		Component: &cdx.Component{
			BOMRef: "image",
			Type:   cdx.ComponentTypeFile,
			Name:   in.Image.Name,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: in.Image.SHA256}},
		},
	}
	var comps []cdx.Component
	refs := []string{}
	if id := f.OSRelease["ID"]; id != "" {
		os := cdx.Component{
			BOMRef:      "os",
			Type:        cdx.ComponentTypeOS,
			Name:        id,
			Version:     f.OSRelease["VERSION_ID"],
			Description: f.OSRelease["PRETTY_NAME"],
		}
		if f.Kernel != "" {
			os.Properties = &[]cdx.Property{{Name: PropertyKernel, Value: f.Kernel}}
		}
		comps = append(comps, os)
		refs = append(refs, os.BOMRef)
	}
	seen := map[string]bool{}
	for i, p := range f.Packages {
		c := cdx.Component{Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version}
		if u, ok := PackageURL(f, p); ok {
			c.PackageURL = u.ToString()
			c.BOMRef = c.PackageURL
		}
		if c.BOMRef == "" || seen[c.BOMRef] {
			c.BOMRef = "package-" + strconv.Itoa(i+1)
		}
		seen[c.BOMRef] = true
		var props []cdx.Property
		for _, kv := range [][2]string{{PropertyArchitecture, p.Architecture}, {PropertySource, p.Source}, {PropertySourceVersion, p.SourceVersion}} {
			if kv[1] != "" {
				props = append(props, cdx.Property{Name: kv[0], Value: kv[1]})
			}
		}
		if len(props) > 0 {
			c.Properties = &props
		}
		comps = append(comps, c)
		refs = append(refs, c.BOMRef)
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: "image", Dependencies: &refs}}

	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return nil, fmt.Errorf("sbom: CycloneDX: %w", err)
	}
	return buf.Bytes(), nil
}
