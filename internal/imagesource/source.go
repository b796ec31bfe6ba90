package imagesource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/httpclient"
)

// maxIndexSize bounds what is read of one index. Ubuntu's released
// simplestreams file is tens of megabytes; a mirror answering with more than
// this is broken.
const maxIndexSize = 256 << 20

// userAgent identifies the requests to the mirrors.
const userAgent = "packer-plugin-cloudimg (cloudimg-image data source)"

// source reads files and directory listings below a mirror's base: an
// http(s) URL or a local directory. Paths given to it ("rel") are relative,
// slash-separated and already checked by safeRel.
type source struct {
	base   string // the base as a URL ending in "/" (file:// for a directory)
	dir    string // the local directory; "" for http(s)
	client *http.Client
}

// schemeRE tells a URL from a directory path (a one-letter "scheme" is a
// Windows drive).
var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]+:`)

// parseBase turns a base_url (http(s) URL, file:// URL, or directory path)
// into its URL form ending in "/", and the local directory when it is one.
func parseBase(s string) (base, dir string, err error) {
	if s == "" {
		return "", "", errors.New("empty")
	}
	if !schemeRE.MatchString(s) {
		abs, err := filepath.Abs(s)
		if err != nil {
			return "", "", fmt.Errorf("%q: %v", s, err)
		}
		return fileURL(abs, true), abs, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q: a mirror's base URL has no query or fragment", s)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return "", "", fmt.Errorf("%q has no host", s)
		}
		b := u.String()
		if !strings.HasSuffix(b, "/") {
			b += "/"
		}
		return b, "", nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return "", "", fmt.Errorf("%q: a file:// URL names a local directory (file:///path/to/mirror), not host %q", s, u.Host)
		}
		if u.Opaque != "" || !path.IsAbs(u.Path) {
			return "", "", fmt.Errorf("%q: the path of a file:// URL must be absolute", s)
		}
		dir := filepath.Clean(filepath.FromSlash(u.Path))
		return fileURL(dir, true), dir, nil
	default:
		return "", "", fmt.Errorf("%q: unsupported scheme %q; use https://, http://, file:// or a directory path", s, u.Scheme)
	}
}

// fileURL is the file:// URL of an absolute local path.
func fileURL(p string, isDir bool) string {
	p = filepath.ToSlash(p)
	if isDir && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

func newSource(baseURL string, client *http.Client) (*source, error) {
	base, dir, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	return &source{base: base, dir: dir, client: httpclient.OrDefault(client)}, nil
}

// url is the absolute URL of rel, as outputs and messages show it.
func (s *source) url(rel string) string {
	if s.dir != "" {
		return fileURL(filepath.Join(s.dir, filepath.FromSlash(rel)), strings.HasSuffix(rel, "/"))
	}
	return s.base + rel
}

// notFoundError is a file or directory the mirror does not have (HTTP 404 or
// 410, or no such local file). It matches fs.ErrNotExist.
type notFoundError struct {
	where  string
	detail string
}

func (e *notFoundError) Error() string        { return e.where + ": " + e.detail }
func (e *notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// ErrUnreachable matches the errors of a mirror that could not be reached:
// no connection, a timeout, a dropped response, or a proxy's 502, 503 or
// 504. A mirror that answers (404, another HTTP error, a malformed index)
// is reachable.
var ErrUnreachable = errors.New("mirror unreachable")

type unreachableError struct{ err error }

func (e *unreachableError) Error() string        { return "cannot reach the mirror: " + e.err.Error() }
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// get reads the file rel.
func (s *source) get(ctx context.Context, rel string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.dir != "" {
		return s.readLocal(rel)
	}
	u := s.url(rel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, &unreachableError{err: err}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return nil, &notFoundError{where: u, detail: "HTTP " + resp.Status}
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// What a proxy answers when it cannot reach the mirror either.
		return nil, &unreachableError{err: fmt.Errorf("%s: HTTP %s", u, resp.Status)}
	default:
		return nil, fmt.Errorf("%s: HTTP %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexSize+1))
	if err != nil {
		return nil, &unreachableError{err: fmt.Errorf("%s: reading the response: %w", u, err)}
	}
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("%s: larger than %d MiB, not an index", u, maxIndexSize>>20)
	}
	return data, nil
}

func (s *source) readLocal(rel string) ([]byte, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &notFoundError{where: p, detail: "no such file"}
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("%s: larger than %d MiB, not an index", p, maxIndexSize>>20)
	}
	return data, nil
}

// listDirs lists the subdirectory names of the directory rel (ending in
// "/"): from the HTML index page a web server generates, or from the local
// directory. Names come without their trailing "/".
func (s *source) listDirs(ctx context.Context, rel string) ([]string, error) {
	if s.dir == "" {
		page, err := s.get(ctx, rel)
		if err != nil {
			return nil, err
		}
		return parseListing(page), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	entries, err := os.ReadDir(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &notFoundError{where: p, detail: "no such directory"}
		}
		return nil, err
	}
	var names []string
	for _, e := range entries {
		isDir := e.IsDir()
		if !isDir && e.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(p, e.Name())); err == nil {
				isDir = fi.IsDir()
			}
		}
		if isDir {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// safeRel checks a path taken from an index before it becomes part of a
// URL: relative, slash-separated, no "." or ".." elements, no scheme, query
// or fragment, no control characters or backslashes.
func safeRel(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.ContainsAny(p, "\\?#%:"):
		return fmt.Errorf("path %q has a character not allowed in an image path", p)
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("path %q has a space or control character", p)
		}
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("path %q has an empty, \".\" or \"..\" element", p)
		}
	}
	return nil
}
