package imagemeta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Names of the files a repository directory holds besides the images.
const (
	IndexFile    = "index.json"
	SumsFile     = "SHA256SUMS"
	LockFile     = ".lock"
	corruptInfix = ".corrupt-"
)

// Repo is an image repository directory: images anywhere below Dir, an
// index.json listing them and a SHA256SUMS that `sha256sum -c` accepts when
// run in Dir. All updates go through Add, which serialises writers, goroutines
// and processes alike, with an exclusive lock on Dir/.lock.
type Repo struct {
	// Dir is the repository directory; Add creates it when missing.
	Dir string
	// Warn receives warnings: problems Add recovered from, such as a
	// corrupt index.json moved aside. When nil they go to the standard
	// logger.
	Warn func(msg string)
}

// Index is the content of index.json.
type Index struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schema_version"`
	// Images lists every image once, sorted by path.
	Images []IndexEntry `json:"images"`
	// Latest maps each image name to the path of its newest image (by
	// Created; equal times are broken by the greater path).
	Latest map[string]string `json:"latest"`
}

// IndexEntry is one image of the repository index.
type IndexEntry struct {
	// Name is the logical image name; required.
	Name string `json:"name"`
	// Path is relative to the repository directory and slash-separated;
	// Add sets it from its relPath argument.
	Path string `json:"path"`
	// ID identifies the image; Add sets "sha256:<hex>" when empty.
	ID string `json:"id"`
	// Labels are free-form user labels; always present, possibly empty.
	Labels map[string]string `json:"labels"`
	// Checksums maps algorithm to hex digest; Add fills "sha256".
	Checksums map[string]string `json:"checksums"`
	// Size is the image file size in bytes.
	Size int64 `json:"size"`
	// Firmware is what the image boots with, "bios" or "uefi", when known.
	Firmware string `json:"firmware,omitempty"`
	// Created is when the image was built; Add uses the current time
	// when zero. Marshalled as RFC 3339 in UTC.
	Created time.Time `json:"created"`
	// BuildID is the Packer run UUID of the build that made the image
	// (its metadata's build.packer_run_uuid); with SourceName it joins a
	// node's Identity (IdentityPath) to this entry. Omitted when unknown.
	BuildID string `json:"build_id,omitempty"`
	// SourceName is the source block name of that build (the metadata's
	// build.source_name). Omitted when unknown.
	SourceName string `json:"source_name,omitempty"`
	// Sidecars are the documents that belong to the image (its metadata,
	// SBOM, provenance). Add checks and normalises their paths like the
	// image's and lists each in SHA256SUMS; whatever removes the image
	// removes them with it. Omitted when empty.
	Sidecars []Sidecar `json:"sidecars,omitempty"`
}

// Sidecar is one document stored next to an image in the repository.
type Sidecar struct {
	// Kind says what the document is: SidecarMetadata, SidecarCycloneDX,
	// SidecarSPDX, SidecarProvenance or one of the Sigstore bundles
	// (SidecarSignature, SidecarProvenanceSignature, SidecarSBOMSignature);
	// others may be added.
	Kind string `json:"kind"`
	// Path is relative to the repository directory and slash-separated; an
	// absolute path given to Add is made relative to Dir.
	Path string `json:"path"`
	// SHA256 is the file's SHA-256, lower-case hex.
	SHA256 string `json:"sha256"`
}

// Sidecar kinds.
const (
	SidecarMetadata   = "metadata"       // <image>.metadata.json (this package's Metadata)
	SidecarCycloneDX  = "sbom-cyclonedx" // CycloneDX JSON SBOM
	SidecarSPDX       = "sbom-spdx"      // SPDX JSON SBOM
	SidecarProvenance = "provenance"     // in-toto Statement with an SLSA Provenance predicate

	// SidecarSignature is <image>.sigstore.json: a Sigstore bundle signing
	// the image file (`cosign verify-blob`).
	SidecarSignature = "signature"
	// SidecarProvenanceSignature is <image>.provenance.sigstore.json: the
	// provenance statement in a DSSE envelope (`cosign
	// verify-blob-attestation --type slsaprovenance1`).
	SidecarProvenanceSignature = "provenance-signature"
	// SidecarSBOMSignature is <image>.sbom.sigstore.json: the SBOM as the
	// predicate of an in-toto statement in a DSSE envelope (`cosign
	// verify-blob-attestation --type cyclonedx` or `spdxjson`).
	SidecarSBOMSignature = "sbom-signature"
)

func (r *Repo) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.Warn != nil {
		r.Warn(msg)
		return
	}
	log.Printf("imagemeta: warning: %s", msg)
}

// Add registers an image in the repository. relPath locates the image
// relative to Dir (an absolute path is made relative to Dir); it must be
// inside Dir. sha256Hex is the image's SHA-256 in hex.
//
// Under the repository lock Add rewrites index.json and SHA256SUMS, each
// through a temporary file renamed into place: an entry or line with the
// same path is replaced, all others are kept, and the index's "latest" map
// is recomputed. An index.json that cannot be parsed is renamed to
// index.json.corrupt-<UTC time> and rebuilt, with a warning through Warn; an
// index written by a newer schema is an error and is left alone.
func (r *Repo) Add(entry IndexEntry, sha256Hex string, relPath string) error {
	_, err := r.AddKeepLast(entry, sha256Hex, relPath, 0)
	return err
}

// Removed is one image that retention (AddKeepLast) removed.
type Removed struct {
	// Entry is the image's index entry as it was.
	Entry IndexEntry
	// Files are the files deleted, relative to Dir and slash-separated:
	// the image, its sidecars and its "<image>.metadata.json", those that
	// existed.
	Files []string
	// Dirs are the directories deleted because they were left empty,
	// relative to Dir.
	Dirs []string

	candidates []string // files to delete, set by prune
}

// AddKeepLast is Add followed by retention when keepLast > 0: under the same
// lock, the images with the added image's Name and exactly its Labels (the
// same label set) beyond the newest keepLast are removed — their index
// entries, their SHA256SUMS lines, their files (the image, every sidecar
// and "<image>.metadata.json" when present, even if not listed as a sidecar)
// and the directories those files leave empty, up to Dir. "Newest" is the
// order of Index.Newest. The image just added is never removed: it is kept
// with the newest keepLast-1 others. A file another kept image lists is not
// deleted. index.json and SHA256SUMS are rewritten before any file is
// deleted, so the index never lists a deleted file; a file that cannot be
// deleted is reported through Warn and stays behind, unlisted. keepLast <= 0
// keeps every image.
func (r *Repo) AddKeepLast(entry IndexEntry, sha256Hex string, relPath string, keepLast int) ([]Removed, error) {
	if r == nil || r.Dir == "" {
		return nil, errors.New("imagemeta: repository directory not set")
	}
	if strings.TrimSpace(entry.Name) == "" {
		return nil, errors.New("imagemeta: image name is required to add an image to the repository")
	}
	sum := strings.ToLower(sha256Hex)
	if !isHex(sum, 64) {
		return nil, fmt.Errorf("imagemeta: %q is not a SHA-256 hex digest", sha256Hex)
	}
	rel, err := r.relPath(relPath)
	if err != nil {
		return nil, err
	}

	entry.Path = rel
	checksums := make(map[string]string, len(entry.Checksums)+1)
	for k, v := range entry.Checksums {
		checksums[strings.ToLower(k)] = strings.ToLower(v)
	}
	if old, ok := checksums["sha256"]; ok && old != sum {
		return nil, fmt.Errorf("imagemeta: entry for %s has sha256 %s but %s was given", rel, old, sum)
	}
	checksums["sha256"] = sum
	entry.Checksums = checksums
	if entry.ID == "" {
		entry.ID = "sha256:" + sum
	}
	if entry.Created.IsZero() {
		entry.Created = time.Now()
	}
	entry.Created = entry.Created.UTC().Truncate(time.Second)
	sidecars := make([]Sidecar, 0, len(entry.Sidecars))
	for _, sc := range entry.Sidecars {
		p, err := r.relPath(sc.Path)
		if err != nil {
			return nil, fmt.Errorf("imagemeta: %s sidecar of %s: %w", sc.Kind, rel, err)
		}
		if p == rel {
			return nil, fmt.Errorf("imagemeta: %s sidecar of %s is the image itself", sc.Kind, rel)
		}
		h := strings.ToLower(sc.SHA256)
		if !isHex(h, 64) {
			return nil, fmt.Errorf("imagemeta: %s sidecar %s: %q is not a SHA-256 hex digest", sc.Kind, p, sc.SHA256)
		}
		sidecars = append(sidecars, Sidecar{Kind: sc.Kind, Path: p, SHA256: h})
	}
	sort.Slice(sidecars, func(i, j int) bool { return sidecars[i].Path < sidecars[j].Path })
	entry.Sidecars = nil
	if len(sidecars) > 0 {
		entry.Sidecars = sidecars
	}

	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("imagemeta: cannot create repository directory %s: %w", r.Dir, err)
	}
	release := processLock(r.Dir)
	defer release()
	unlock, err := lockRepo(filepath.Join(r.Dir, LockFile))
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("imagemeta: repository directory %s is not writable: %w", r.Dir, err)
		}
		return nil, fmt.Errorf("imagemeta: cannot lock repository %s: %w", r.Dir, err)
	}
	defer unlock()

	idx, err := r.readIndex()
	if err != nil {
		return nil, err
	}
	sums, err := r.readSums()
	if err != nil {
		return nil, err
	}

	replaced := false
	for i := range idx.Images {
		if idx.Images[i].Path == rel {
			for _, sc := range idx.Images[i].Sidecars {
				delete(sums, sc.Path) // the new entry's own are added below
			}
			idx.Images[i] = entry
			replaced = true
			break
		}
	}
	if !replaced {
		idx.Images = append(idx.Images, entry)
	}
	idx.normalize()
	sums[rel] = sum
	for _, sc := range entry.Sidecars {
		sums[sc.Path] = sc.SHA256
	}
	var removed []Removed
	if keepLast > 0 {
		removed = r.prune(idx, sums, entry, keepLast)
	}

	// SHA256SUMS first, then index.json: the index is the record of what
	// the repository holds, so it is written last. A crash between the two
	// leaves a line the next Add of that path overwrites.
	if err := writeFileAtomic(filepath.Join(r.Dir, SumsFile), formatSums(sums), 0o644); err != nil {
		return nil, r.writeErr(err)
	}
	b, err := marshalCanonical(idx)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.Dir, IndexFile), b, 0o644); err != nil {
		return nil, r.writeErr(err)
	}
	for i := range removed {
		r.deleteFiles(&removed[i])
	}
	return removed, nil
}

// dirLocks serialises the Adds of one process per repository directory
// before they take the file lock. The file lock alone would be correct, but
// goroutines blocked in flock(2) each pin an OS thread in a system call, and
// with few Ps the lock holder then waits for the scheduler to retake a P after
// every system call it makes: 50 concurrent Adds took seconds instead of
// milliseconds. Waiting on a sync.Mutex costs no thread.
var dirLocks sync.Map // absolute directory -> *sync.Mutex

func processLock(dir string) (release func()) {
	key := dir
	if abs, err := filepath.Abs(dir); err == nil {
		key = abs
	}
	if real, err := filepath.EvalSymlinks(key); err == nil {
		key = real
	}
	mu, _ := dirLocks.LoadOrStore(key, new(sync.Mutex))
	m := mu.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}

func (r *Repo) writeErr(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("imagemeta: repository directory %s is not writable: %w", r.Dir, err)
	}
	return err
}

// relPath validates p and returns it relative to r.Dir, slash-separated.
func (r *Repo) relPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("imagemeta: image path is empty")
	}
	if filepath.IsAbs(p) {
		rel, err := RelativePath(r.Dir, p)
		if err != nil {
			return "", err
		}
		p = rel
	}
	rel := path.Clean(filepath.ToSlash(p))
	if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) || filepath.IsAbs(rel) || filepath.VolumeName(rel) != "" {
		return "", fmt.Errorf("imagemeta: image %s is outside the repository directory %s: images must be inside the repository (write them below it, or choose a repository directory that contains them)", p, r.Dir)
	}
	if rel == "." {
		return "", fmt.Errorf("imagemeta: image path %q names the repository directory itself", p)
	}
	switch rel {
	case IndexFile, SumsFile, LockFile:
		return "", fmt.Errorf("imagemeta: image path %q is reserved for the repository's own %s", p, rel)
	}
	return rel, nil
}

// ReadIndex reads the repository's index.json without taking the lock (it
// is always replaced atomically, so a reader sees a whole version). A
// missing index gives an empty Index.
func (r *Repo) ReadIndex() (*Index, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, IndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newIndex(), nil
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s: %w", filepath.Join(r.Dir, IndexFile), err)
	}
	return idx, nil
}

func newIndex() *Index {
	return &Index{SchemaVersion: SchemaVersion, Images: []IndexEntry{}, Latest: map[string]string{}}
}

// errNewerSchema marks an index this version must not rewrite.
var errNewerSchema = errors.New("written by a newer version")

func parseIndex(b []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	switch {
	case idx.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("schema_version %d %w of the plugin (this one handles %d)",
			idx.SchemaVersion, errNewerSchema, SchemaVersion)
	case idx.SchemaVersion != SchemaVersion:
		return nil, fmt.Errorf("missing or invalid schema_version %d", idx.SchemaVersion)
	}
	for i, e := range idx.Images {
		if e.Path == "" || e.Name == "" {
			return nil, fmt.Errorf("image %d has no name or path", i)
		}
	}
	return &idx, nil
}

// readIndex reads index.json for an update, moving a corrupt one aside.
func (r *Repo) readIndex() (*Index, error) {
	p := filepath.Join(r.Dir, IndexFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return newIndex(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("imagemeta: reading %s: %w", p, err)
	}
	idx, perr := parseIndex(b)
	if perr == nil {
		return idx, nil
	}
	if errors.Is(perr, errNewerSchema) {
		return nil, fmt.Errorf("imagemeta: %s: %w; refusing to rewrite it", p, perr)
	}
	aside, err := moveAside(p)
	if err != nil {
		return nil, fmt.Errorf("imagemeta: %s is corrupt (%v) and could not be moved aside: %w", p, perr, err)
	}
	r.warn("%s was corrupt (%v); moved it to %s and started a new index: images registered before are no longer listed in it",
		p, perr, filepath.Base(aside))
	return newIndex(), nil
}

// asideName returns p.corrupt-<UTC time yyyymmddThhmmssZ>, with a counter
// appended when that name is taken. Callers hold the repository lock.
func asideName(p string) string {
	base := p + corruptInfix + time.Now().UTC().Format("20060102T150405Z")
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			return dst
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
}

// moveAside renames p to asideName(p).
func moveAside(p string) (string, error) {
	dst := asideName(p)
	if err := os.Rename(p, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// normalize keeps one entry per path (the last one, should a hand-edited
// index list a path twice), sorts the images by path and recomputes Latest.
func (idx *Index) normalize() {
	idx.SchemaVersion = SchemaVersion
	byPath := make(map[string]int, len(idx.Images))
	images := idx.Images[:0]
	for _, e := range idx.Images {
		if i, ok := byPath[e.Path]; ok {
			images[i] = e
			continue
		}
		byPath[e.Path] = len(images)
		images = append(images, e)
	}
	idx.Images = images
	sort.Slice(idx.Images, func(i, j int) bool { return idx.Images[i].Path < idx.Images[j].Path })
	latest := make(map[string]IndexEntry)
	for i, e := range idx.Images {
		if e.Labels == nil {
			idx.Images[i].Labels = map[string]string{}
		}
		cur, ok := latest[e.Name]
		if !ok || newer(e, cur) {
			latest[e.Name] = e
		}
	}
	idx.Latest = make(map[string]string, len(latest))
	for n, e := range latest {
		idx.Latest[n] = e.Path
	}
	if idx.Images == nil {
		idx.Images = []IndexEntry{}
	}
}

// readSums parses SHA256SUMS into path -> digest. Lines that are not in the
// GNU format are dropped with a warning, after the original file has been
// copied aside.
func (r *Repo) readSums() (map[string]string, error) {
	p := filepath.Join(r.Dir, SumsFile)
	sums := make(map[string]string)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return sums, nil
	}
	if err != nil {
		return nil, fmt.Errorf("imagemeta: reading %s: %w", p, err)
	}
	var bad []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, sum, ok := parseSumLine(line)
		if !ok {
			bad = append(bad, n)
			continue
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("imagemeta: reading %s: %w", p, err)
	}
	if len(bad) > 0 {
		aside := asideName(p)
		if err := writeFileAtomic(aside, b, 0o644); err != nil {
			return nil, fmt.Errorf("imagemeta: %s has malformed lines and could not be copied aside: %w", p, err)
		}
		r.warn("%s had %d malformed line(s) (line %d first); dropped them, original kept as %s",
			p, len(bad), bad[0], filepath.Base(aside))
	}
	return sums, nil
}

// parseSumLine parses one line of GNU sha256sum output: "<hex>  <name>"
// (text mode) or "<hex> *<name>" (binary mode), where a leading backslash
// means the name is escaped (\\, \n, \r).
func parseSumLine(line string) (name, sum string, ok bool) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	if len(line) < 64+2+1 || (line[64] != ' ') || (line[65] != ' ' && line[65] != '*') {
		return "", "", false
	}
	sum = strings.ToLower(line[:64])
	if !isHex(sum, 64) {
		return "", "", false
	}
	name = line[66:]
	if escaped {
		if name, ok = unescapeSumName(name); !ok {
			return "", "", false
		}
	}
	return name, sum, true
}

func unescapeSumName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// formatSums renders path -> digest as GNU sha256sum text-mode lines sorted
// by path, escaping names the way GNU does.
func formatSums(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	esc := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
	for _, n := range names {
		shown := n
		if strings.ContainsAny(n, "\\\n\r") {
			b.WriteByte('\\')
			shown = esc.Replace(n)
		}
		b.WriteString(sums[n])
		b.WriteString("  ")
		b.WriteString(shown)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
