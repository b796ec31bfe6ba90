// Package provenance makes the provenance of an image: an in-toto Statement
// v1 (https://in-toto.io/Statement/v1) whose predicate is SLSA Provenance v1
// (https://slsa.dev/provenance/v1), built with the Go types of
// github.com/in-toto/attestation. Pure: what the build knows in, statement
// bytes out. The statement is unsigned; signing is left to the user's tools.
package provenance

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/package-url/packageurl-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/gitremote"
)

// PredicateType is the SLSA Provenance v1 predicate type.
const PredicateType = "https://slsa.dev/provenance/v1"

// BuildType identifies how this plugin's builds are described (the SLSA
// buildType): the page that documents the external parameters and the
// resolved dependencies below.
const BuildType = "https://github.com/packer-cloudimg/packer-plugin-cloudimg/blob/main/docs/post-processors/metadata.mdx#provenance-build-type-v1"

// BuilderIDPrefix is the start of runDetails.builder.id, which goes on with
// the Packer builder id of the artifact (e.g. "packer-cloudimg.kvm").
const BuilderIDPrefix = "https://github.com/packer-cloudimg/packer-plugin-cloudimg/packer-builder/"

// Input is what the statement says.
type Input struct {
	// Image is the subject: the image file's name and SHA-256 (hex).
	Image Image
	// BuilderID is the Packer builder id of the artifact.
	BuilderID string
	// ExternalParameters are what the template chose, as JSON values
	// (string, bool, float64, nil, []any, map[string]any). The caller
	// leaves out or redacts whatever is secret. Must not be empty.
	ExternalParameters map[string]any
	// Source is the image the build started from; nil when none.
	Source *Source
	// Template is the git state of the template's directory; nil when
	// unknown.
	Template *Template
	// PluginModule and PluginVersion name this plugin (its Go module path and
	// its version without "v").
	PluginModule, PluginVersion string
	// PackerVersion is Packer's version without "v"; "" when unknown.
	PackerVersion string
	// InvocationID identifies the Packer run (PACKER_RUN_UUID); "" when
	// unknown.
	InvocationID string
	// StartedOn and FinishedOn bound the build; zero when unknown.
	StartedOn, FinishedOn time.Time
}

// Image is the statement's subject.
type Image struct {
	Name   string
	SHA256 string
}

// Source is the source image.
type Source struct {
	// URL of the image (credentials in it are dropped), or an absolute
	// path (recorded as a file: URL).
	URL string
	// Checksum as Packer takes it: "<algorithm>:<hex>", or a bare SHA-256
	// hex; anything else ("none", "file:…") gives no digest.
	Checksum string
}

// Template is the state of the git work tree holding the template. Remote
// is the repository's address (see internal/gitremote); it is recorded as
// the "template" dependency's URI "git+<URI>", and left out when it is a
// local path.
type Template struct {
	Remote, Branch, Commit string
	Dirty                  bool
}

// Statement returns the statement as indented JSON.
func Statement(in Input) ([]byte, error) {
	if in.Image.Name == "" || !isHex(in.Image.SHA256, 64) {
		return nil, errors.New("provenance: the image needs a name and a SHA-256 (64 hex digits)")
	}
	if in.BuilderID == "" {
		return nil, errors.New("provenance: the builder id is empty")
	}
	params, err := structpb.NewStruct(in.ExternalParameters)
	if err != nil {
		return nil, fmt.Errorf("provenance: external parameters: %w", err)
	}
	var deps []*intoto.ResourceDescriptor
	if s := in.Source; s != nil && s.URL != "" {
		d := &intoto.ResourceDescriptor{Name: "source-image", Uri: asURI(s.URL)}
		if algo, sum, ok := digest(s.Checksum); ok {
			d.Digest = map[string]string{algo: sum}
		}
		deps = append(deps, d)
	}
	if t := in.Template; t != nil && (t.Commit != "" || t.Remote != "") {
		d := &intoto.ResourceDescriptor{Name: "template"}
		// The same rule as the metadata's vcs.remote (a local path is
		// left out), applied here too for callers that pass a raw address.
		if u, ok := gitremote.URI(t.Remote); ok {
			d.Uri = "git+" + u
		}
		if t.Commit != "" {
			d.Digest = map[string]string{string(intoto.AlgorithmGitCommit): t.Commit}
		}
		ann := map[string]any{"dirty": t.Dirty}
		if t.Branch != "" {
			ann["branch"] = t.Branch
		}
		if d.Annotations, err = structpb.NewStruct(ann); err != nil {
			return nil, err
		}
		deps = append(deps, d)
	}
	versions := map[string]string{}
	if in.PluginModule != "" && in.PluginVersion != "" {
		deps = append(deps, goModule(in.PluginModule, in.PluginVersion))
		versions[in.PluginModule] = in.PluginVersion
	}
	if in.PackerVersion != "" {
		deps = append(deps, goModule("github.com/hashicorp/packer", in.PackerVersion))
		versions["github.com/hashicorp/packer"] = in.PackerVersion
	}
	meta := &slsa.BuildMetadata{InvocationId: in.InvocationID}
	if !in.StartedOn.IsZero() {
		meta.StartedOn = timestamppb.New(in.StartedOn.UTC().Truncate(time.Second))
	}
	if !in.FinishedOn.IsZero() {
		meta.FinishedOn = timestamppb.New(in.FinishedOn.UTC().Truncate(time.Second))
	}
	pred := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   params,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{
			Builder:  &slsa.Builder{Id: BuilderIDPrefix + in.BuilderID, Version: versions},
			Metadata: meta,
		},
	}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	predStruct, err := toStruct(pred)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Name: in.Image.Name, Digest: map[string]string{"sha256": strings.ToLower(in.Image.SHA256)}}},
		PredicateType: PredicateType,
		Predicate:     predStruct,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	// protojson's spacing is deliberately unstable: normalise it.
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, err
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Parse reads a statement written by Statement (or anyone else) with the
// in-toto Go types, rejecting unknown fields, checks it with their Validate,
// and returns it with its SLSA Provenance v1 predicate.
func Parse(b []byte) (*intoto.Statement, *slsa.Provenance, error) {
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(b, st); err != nil {
		return nil, nil, fmt.Errorf("provenance: not an in-toto statement: %w", err)
	}
	if err := st.Validate(); err != nil {
		return nil, nil, fmt.Errorf("provenance: %w", err)
	}
	if st.GetType() != intoto.StatementTypeUri || st.GetPredicateType() != PredicateType {
		return nil, nil, fmt.Errorf("provenance: a %s statement with a %s predicate, want %s and %s", st.GetType(), st.GetPredicateType(), intoto.StatementTypeUri, PredicateType)
	}
	pb, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, nil, err
	}
	pred := &slsa.Provenance{}
	if err := protojson.Unmarshal(pb, pred); err != nil {
		return nil, nil, fmt.Errorf("provenance: not an SLSA Provenance v1 predicate: %w", err)
	}
	if err := pred.Validate(); err != nil {
		return nil, nil, fmt.Errorf("provenance: %w", err)
	}
	return st, pred, nil
}

func toStruct(pred *slsa.Provenance) (*structpb.Struct, error) {
	b, err := protojson.Marshal(pred)
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	return s, nil
}

// goModule describes a Go module at a version by its package URL
// (pkg:golang/<module>@v<version>).
func goModule(module, version string) *intoto.ResourceDescriptor {
	ns, name := "", module
	if i := strings.LastIndex(module, "/"); i >= 0 {
		ns, name = module[:i], module[i+1:]
	}
	u := packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, "v"+strings.TrimPrefix(version, "v"), nil, "")
	return &intoto.ResourceDescriptor{Name: module, Uri: u.ToString()}
}

// digest parses a Packer checksum ("sha256:<hex>", or a bare SHA-256) into
// an in-toto digest algorithm and hex value.
func digest(checksum string) (algo, sum string, ok bool) {
	algo, sum, found := strings.Cut(strings.ToLower(strings.TrimSpace(checksum)), ":")
	if !found {
		algo, sum = "sha256", algo
	}
	a, known := intoto.HashAlgorithms[algo]
	if !known || a.HexLength() == 0 || !isHex(sum, 2*a.HexLength()) { // HexLength is in bytes
		return "", "", false
	}
	return algo, sum, true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// asURI is a source image's location as a URI: a URL without its
// credentials, or a local absolute path as a file: URL.
func asURI(s string) string {
	if strings.HasPrefix(s, "/") {
		return (&url.URL{Scheme: "file", Path: s}).String()
	}
	return withoutCredentials(s)
}

// withoutCredentials drops the user information of a URL; other strings
// (paths, scp-like git remotes) pass unchanged.
func withoutCredentials(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}
