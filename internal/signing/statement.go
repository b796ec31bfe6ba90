package signing

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Predicate types, as cosign's `--type` names them.
const (
	// PredicateSLSAProvenance1 is `--type slsaprovenance1`.
	PredicateSLSAProvenance1 = "https://slsa.dev/provenance/v1"
	// PredicateCycloneDX is `--type cyclonedx`.
	PredicateCycloneDX = "https://cyclonedx.org/bom"
	// PredicateSPDX is `--type spdxjson`.
	PredicateSPDX = "https://spdx.dev/Document"
	// PredicateCosignSign is what cosign v3 signs for `cosign sign` of a
	// registry manifest in the bundle format: a statement with this type,
	// an empty predicate ({}) and the manifest digest as its subject
	// (unnamed), whose bundle is attached as a referrer of artifactType
	// BundleMediaType; `cosign verify --key` checks it.
	PredicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
)

// Subject is what a statement is about: a file (its base name) or a
// registry manifest (its reference), and its SHA-256 in hex.
type Subject struct {
	Name   string
	SHA256 string
}

// Statement is a parsed in-toto Statement v1.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []StatementSubj `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// StatementSubj is one subject of a Statement.
type StatementSubj struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// NewStatement makes the bytes of an in-toto Statement v1 about subjects
// with predicate (a JSON object, e.g. a CycloneDX or SPDX document) of
// predicateType — what `cosign attest-blob --type …` makes. The predicate
// is kept as it is (compacted), not re-encoded through another model.
func NewStatement(subjects []Subject, predicateType string, predicate []byte) ([]byte, error) {
	if len(subjects) == 0 {
		return nil, errors.New("statement: no subject")
	}
	st := Statement{Type: intoto.StatementTypeUri, PredicateType: predicateType, Predicate: predicate}
	for _, s := range subjects {
		if _, err := decodeSHA256(s.SHA256); err != nil {
			return nil, fmt.Errorf("statement: subject %s: %w", s.Name, err)
		}
		st.Subject = append(st.Subject, StatementSubj{Name: s.Name, Digest: map[string]string{"sha256": strings.ToLower(s.SHA256)}})
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	if _, err := ParseStatement(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseStatement parses and validates an in-toto Statement v1 (with the
// in-toto attestation library's own checks).
func ParseStatement(b []byte) (*Statement, error) {
	var pb intoto.Statement
	if err := protojson.Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if err := pb.Validate(); err != nil {
		return nil, fmt.Errorf("invalid in-toto statement: %w", err)
	}
	if pb.GetType() != intoto.StatementTypeUri {
		return nil, fmt.Errorf("in-toto statement type %q, want %q", pb.GetType(), intoto.StatementTypeUri)
	}
	var st Statement
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	return &st, nil
}

// NamesDigest reports whether a subject of the statement has this SHA-256
// (hex).
func (s *Statement) NamesDigest(sha256Hex string) bool {
	for _, sub := range s.Subject {
		if strings.EqualFold(sub.Digest["sha256"], sha256Hex) {
			return true
		}
	}
	return false
}

// CheckProvenance checks that a verified SLSA provenance statement written by
// the cloudimg-metadata post-processor names the image asked for: its
// externalParameters.image_name is name, and its externalParameters.labels
// hold every one of labels with the same value (the image may have more).
// The error lists each difference.
func CheckProvenance(st *Statement, name string, labels map[string]string) error {
	if st.PredicateType != PredicateSLSAProvenance1 {
		return fmt.Errorf("the statement's predicate type is %q, not SLSA provenance v1 (%s)", st.PredicateType, PredicateSLSAProvenance1)
	}
	var p struct {
		BuildDefinition struct {
			ExternalParameters struct {
				ImageName string            `json:"image_name"`
				Labels    map[string]string `json:"labels"`
			} `json:"externalParameters"`
		} `json:"buildDefinition"`
	}
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return fmt.Errorf("reading the provenance's external parameters: %w", err)
	}
	ext := p.BuildDefinition.ExternalParameters
	var diffs []string
	if ext.ImageName != name {
		diffs = append(diffs, fmt.Sprintf("image_name is %q, not %q", ext.ImageName, name))
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		got, ok := ext.Labels[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("label %s is missing (want %q)", k, labels[k]))
		case got != labels[k]:
			diffs = append(diffs, fmt.Sprintf("label %s is %q, not %q", k, got, labels[k]))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the signed provenance does not name the image asked for: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// ProvenanceFinishedOn is runDetails.metadata.finishedOn of an SLSA
// provenance statement (when the build finished), or the zero time when
// it has none.
func ProvenanceFinishedOn(st *Statement) time.Time {
	var p struct {
		RunDetails struct {
			Metadata struct {
				FinishedOn time.Time `json:"finishedOn"`
			} `json:"metadata"`
		} `json:"runDetails"`
	}
	if st.PredicateType != PredicateSLSAProvenance1 || json.Unmarshal(st.Predicate, &p) != nil {
		return time.Time{}
	}
	return p.RunDetails.Metadata.FinishedOn
}

func decodeSHA256(h string) ([]byte, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a hex SHA-256", h)
	}
	return b, nil
}
