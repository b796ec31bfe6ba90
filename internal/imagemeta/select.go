package imagemeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/httpclient"
)

// newer reports whether a is newer than b: a later Created (the build's
// finish time), and for equal times the greater Path. The order is total,
// so every reader and writer of a repository picks the same newest image;
// the index's "latest" map uses it too.
func newer(a, b IndexEntry) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.Path > b.Path
}

// HasLabels reports whether labels holds every key of want with its value.
func HasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// sameLabels reports whether a and b hold the same labels (nil and empty
// are the same).
func sameLabels(a, b map[string]string) bool {
	return len(a) == len(b) && HasLabels(a, b)
}

// NoMatchError is returned by Index.Newest when no image has the name and
// labels asked for. Its message lists what the repository holds.
type NoMatchError struct {
	// Name and Labels are what was asked for.
	Name   string
	Labels map[string]string
	// Available lists every image name of the index with the distinct
	// label sets its images carry, sorted.
	Available []NameLabels
}

// NameLabels is one image name of an index and the label sets of its
// images.
type NameLabels struct {
	Name      string
	LabelSets []map[string]string
}

func (e *NoMatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no image named %q", e.Name)
	if len(e.Labels) > 0 {
		fmt.Fprintf(&b, " with labels %s", FormatLabels(e.Labels))
	}
	if len(e.Available) == 0 {
		b.WriteString(": the repository holds no images")
		return b.String()
	}
	b.WriteString("; the repository holds:")
	for _, a := range e.Available {
		sets := make([]string, len(a.LabelSets))
		for i, l := range a.LabelSets {
			sets[i] = FormatLabels(l)
		}
		fmt.Fprintf(&b, " %q with labels %s;", a.Name, strings.Join(sets, " or "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// FormatLabels renders labels as "{k=v, k=v}", sorted by key.
func FormatLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Newest returns the newest image whose Name equals name and whose Labels
// include every key of labels with the same value (other labels of the
// image do not matter; nil or empty labels match every image of the name).
// Newest means the latest Created time, which is when the build finished;
// images that finished in the same second are ordered by Path, the greater
// one being the newer, so the answer never depends on the order of the
// index. Without a match the error is a *NoMatchError.
func (idx *Index) Newest(name string, labels map[string]string) (IndexEntry, error) {
	var best IndexEntry
	found := false
	for _, e := range idx.Images {
		if e.Name != name || !HasLabels(e.Labels, labels) {
			continue
		}
		if !found || newer(e, best) {
			best, found = e, true
		}
	}
	if found {
		return best, nil
	}
	return IndexEntry{}, &NoMatchError{Name: name, Labels: labels, Available: idx.available()}
}

// available lists the names of the index with their distinct label sets.
func (idx *Index) available() []NameLabels {
	byName := map[string][]map[string]string{}
	for _, e := range idx.Images {
		sets := byName[e.Name]
		if !slices.ContainsFunc(sets, func(l map[string]string) bool { return sameLabels(l, e.Labels) }) {
			byName[e.Name] = append(sets, e.Labels)
		}
	}
	out := make([]NameLabels, 0, len(byName))
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		sets := byName[n]
		sort.Slice(sets, func(i, j int) bool { return FormatLabels(sets[i]) < FormatLabels(sets[j]) })
		out = append(out, NameLabels{Name: n, LabelSets: sets})
	}
	return out
}

// Location is where a repository is read from: a local directory, or the
// http(s) URL of the repository directory.
type Location struct {
	// Dir is the local directory, when the repository is local.
	Dir string
	// URL is the repository directory's URL (ending in "/"), when remote.
	URL *url.URL
}

// ParseLocation parses a repository location: an http:// or https:// URL
// of the repository directory or of its index.json, a file:// URL, or a
// local directory path (relative paths are taken from the current
// directory). A URL's query and fragment are dropped; its user
// information is kept for the requests and shown redacted by String.
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, errors.New("imagemeta: repository location is empty")
	}
	u, err := url.Parse(s)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host == "" {
			return Location{}, fmt.Errorf("imagemeta: repository URL %q has no host", s)
		}
		c := *u
		if path.Base(c.Path) == IndexFile {
			c.Path = path.Dir(c.Path)
		}
		if !strings.HasSuffix(c.Path, "/") {
			c.Path += "/"
		}
		c.RawPath = ""
		c.RawQuery, c.Fragment = "", ""
		return Location{URL: &c}, nil
	}
	if err == nil && u.Scheme == "file" {
		s = filepath.FromSlash(u.Path)
	} else if err == nil && len(u.Scheme) > 1 {
		return Location{}, fmt.Errorf("imagemeta: repository location %q: scheme %q is not supported (use a directory, file://, http:// or https://)", s, u.Scheme)
	}
	if filepath.Base(s) == IndexFile {
		s = filepath.Dir(s)
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Location{}, fmt.Errorf("imagemeta: repository directory %s: %w", s, err)
	}
	return Location{Dir: abs}, nil
}

// String is the directory or the URL.
func (l Location) String() string {
	if l.URL != nil {
		return l.URL.Redacted()
	}
	return l.Dir
}

// Resolve returns where the repository path rel (slash-separated, as in
// the index) is: the local file path for a directory, the URL resolved
// against the repository URL for a remote repository.
func (l Location) Resolve(rel string) string {
	if l.URL != nil {
		return l.URL.ResolveReference(&url.URL{Path: rel}).String()
	}
	return filepath.Join(l.Dir, filepath.FromSlash(rel))
}

// Show is Resolve(rel) for messages: credentials in a URL are redacted.
func (l Location) Show(rel string) string {
	if l.URL != nil {
		return l.URL.ResolveReference(&url.URL{Path: rel}).Redacted()
	}
	return l.Resolve(rel)
}

// ErrNotFound is wrapped by the errors of ReadFile for a file that does
// not exist (ENOENT, or HTTP 404 or 410).
var ErrNotFound = errors.New("not found")

// maxDocument bounds a document read from a repository (index.json, a
// metadata file): 64 MiB.
const maxDocument = 64 << 20

// ReadFile reads the repository file at rel (slash-separated). client is
// used for a remote repository (nil: the shared client of internal/httpclient). Errors name the
// file or URL.
func (l Location) ReadFile(ctx context.Context, client *http.Client, rel string) ([]byte, error) {
	if l.URL != nil {
		return readURL(ctx, client, l.URL.ResolveReference(&url.URL{Path: rel}))
	}
	return readLocal(l.Resolve(rel))
}

func readLocal(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("imagemeta: %s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %w", err)
	}
	return b, nil
}

func readURL(ctx context.Context, client *http.Client, u *url.URL) ([]byte, error) {
	shown := u.Redacted()
	client = httpclient.OrDefault(client)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s: %w", shown, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("imagemeta: %s: %s: %w", shown, resp.Status, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("imagemeta: %s: %s", shown, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s: %w", shown, err)
	}
	if len(b) > maxDocument {
		return nil, fmt.Errorf("imagemeta: %s: larger than %d bytes", shown, maxDocument)
	}
	return b, nil
}

// ReadIndex reads and checks the repository's index.json. Unlike
// Repo.ReadIndex, a missing index is an error: a reader expects images.
// Every error names the index file or URL.
func (l Location) ReadIndex(ctx context.Context, client *http.Client) (*Index, error) {
	b, err := l.ReadFile(ctx, client, IndexFile)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: is %s an image repository (the cloudimg-metadata post-processor's repository directory)?", err, l)
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s is not a valid repository index: %w", l.Show(IndexFile), err)
	}
	return idx, nil
}

// MetadataPath is where the metadata document of the index entry e is,
// relative to the repository: its SidecarMetadata sidecar when it lists
// one, else "<image path>.metadata.json" (the post-processor's default
// output).
func MetadataPath(e IndexEntry) string {
	for _, sc := range e.Sidecars {
		if sc.Kind == SidecarMetadata {
			return sc.Path
		}
	}
	return e.Path + ".metadata.json"
}

// ParseMetadata decodes a metadata document, rejecting schema versions
// other than SchemaVersion; name is used in errors.
func ParseMetadata(name string, b []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("imagemeta: %s: %w", name, err)
	}
	if m.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("imagemeta: %s: unsupported schema_version %d (want %d)",
			name, m.SchemaVersion, SchemaVersion)
	}
	return &m, nil
}

// ReadEntryMetadata reads the metadata document of e (MetadataPath). A
// missing document gives (nil, nil): images registered by other tools, or
// with the metadata written elsewhere, have none in the repository.
func (l Location) ReadEntryMetadata(ctx context.Context, client *http.Client, e IndexEntry) (*Metadata, error) {
	rel := MetadataPath(e)
	if path.IsAbs(rel) {
		return nil, fmt.Errorf("imagemeta: metadata path %q of %s is outside the repository", rel, e.Path)
	}
	if _, err := (&Repo{Dir: l.String()}).relPath(rel); err != nil {
		return nil, err
	}
	b, err := l.ReadFile(ctx, client, rel)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseMetadata(l.Show(rel), b)
}
