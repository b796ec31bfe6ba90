package imagemeta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
)

// DescribeSource returns the Source of a build that started from the image
// at src (a local path, a file:// URL or an http(s) URL, as given to Packer)
// with the expected checksum ("<algorithm>:<hex>", as given to Packer).
//
// A chained build starts from an image of a repository, beside which the
// post-processor wrote "<image>.metadata.json". When that document exists
// next to src, and it records for the image the digest checksum names (so
// it describes this very file), DescribeSource adds the base image's name,
// SHA-256, build id, labels and the document's location. The returned
// Source always holds URL and Checksum; the error (the document is corrupt,
// cannot be read, or describes another file) says why the base was not
// named, and is meant as a warning. For an http(s) source only a document
// that was fetched can give an error: a server that cannot be reached (an
// offline build from Packer's cache) or answers 404 means no base. client is used for http(s) sources
// (nil: the shared client of internal/httpclient, with bounded waits).
func DescribeSource(ctx context.Context, client *http.Client, src, checksum string) (*Source, error) {
	s := &Source{URL: src, Checksum: checksum}
	if src == "" {
		return s, nil
	}
	var (
		b     []byte
		where string
		err   error
	)
	u, perr := url.Parse(src)
	switch {
	case perr == nil && (u.Scheme == "http" || u.Scheme == "https"):
		mu := *u
		mu.Path += ".metadata.json"
		mu.RawPath = ""
		where = mu.String()
		b, err = readURL(ctx, client, &mu)
		if err != nil && !errors.Is(err, ErrNotFound) {
			// Most http(s) sources are a distribution's cloud images, and
			// offline builds use Packer's cache: a server that cannot be
			// reached now is not worth a warning.
			return s, nil
		}
	case perr == nil && u.Scheme == "file":
		where = filepath.FromSlash(u.Path) + ".metadata.json"
		b, err = readLocal(where)
	case perr == nil && len(u.Scheme) > 1:
		return s, nil // another scheme: not a repository this plugin reads
	default:
		where = src + ".metadata.json"
		b, err = readLocal(where)
	}
	if errors.Is(err, ErrNotFound) {
		return s, nil // not an image of a repository
	}
	if err != nil {
		return s, fmt.Errorf("the source image's metadata: %w", err)
	}
	m, err := ParseMetadata(where, b)
	if err != nil {
		return s, fmt.Errorf("the source image's metadata: %w", err)
	}
	algo, want, ok := strings.Cut(strings.ToLower(checksum), ":")
	if !ok || !isHexAny(want) {
		return s, fmt.Errorf("the source image's metadata %s not linked: the source checksum %q is not <algorithm>:<hex>, so it cannot tell that the document describes this file", StripURLCredentials(where), checksum)
	}
	if got := strings.ToLower(m.Image.Checksums[algo]); got != want {
		return s, fmt.Errorf("the source image's metadata %s not linked: it records %s %q for the image, the source checksum is %s", StripURLCredentials(where), algo, got, want)
	}
	s.ImageName = m.Image.Name
	s.SHA256 = strings.ToLower(m.Image.Checksums["sha256"])
	s.BuildID = m.BuildID()
	s.Labels = m.Labels
	s.Metadata = where
	return s, nil
}

func isHexAny(s string) bool {
	return len(s) > 0 && isHex(s, len(s))
}
