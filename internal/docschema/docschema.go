// Package docschema validates the supply-chain documents this plugin writes
// against the official JSON Schemas of their formats, kept in testdata/
// (testdata/README.md says where each came from). It is meant for tests,
// unit and end to end: the plugin itself does not import it, so the schemas
// stay out of its binary.
package docschema

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed testdata/*.json
var files embed.FS

// Schemas by the URL they are known as ($id, which $ref resolves against)
// and the file holding them.
var resources = map[string]string{
	"http://cyclonedx.org/schema/bom-1.6.schema.json":  "bom-1.6.schema.json",
	"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
	"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schema.json",
	"http://spdx.org/rdf/terms/2.3":                    "spdx-2.3.schema.json",
}

// Root schemas of the documents.
const (
	CycloneDX16 = "http://cyclonedx.org/schema/bom-1.6.schema.json"
	SPDX23      = "http://spdx.org/rdf/terms/2.3"
)

var compiled struct {
	sync.Mutex
	m map[string]*jsonschema.Schema
}

func schema(url string) (*jsonschema.Schema, error) {
	compiled.Lock()
	defer compiled.Unlock()
	if s, ok := compiled.m[url]; ok {
		return s, nil
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for u, name := range resources {
		b, err := files.ReadFile("testdata/" + name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("docschema: %s: %w", name, err)
		}
		if err := c.AddResource(u, doc); err != nil {
			return nil, fmt.Errorf("docschema: %s: %w", name, err)
		}
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("docschema: compiling %s: %w", url, err)
	}
	if compiled.m == nil {
		compiled.m = map[string]*jsonschema.Schema{}
	}
	compiled.m[url] = s
	return s, nil
}

// Validate checks the JSON document doc against the schema known as url
// (CycloneDX16 or SPDX23), formats included. The error lists every
// violation with its location in the document.
func Validate(url string, doc []byte) error {
	s, err := schema(url)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("docschema: not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("docschema: the document does not follow %s: %w", url, err)
	}
	return nil
}
