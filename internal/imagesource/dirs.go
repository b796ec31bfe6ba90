package imagesource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// maxSerialTries bounds how many serial directories, newest first, are
// read for the current image when the newest ones lack it (a serial being
// published, an architecture built later).
const maxSerialTries = 3

// sumsLayout describes a mirror laid out as <dir><prefix><serial>/<sums>,
// each serial directory holding its images and a checksum file.
type sumsLayout struct {
	dir      string         // the release's directory, relative, ending in "/"
	prefix   string         // before the serial in a directory name ("release-" on ubuntu)
	serialRE *regexp.Regexp // the serial's shape
	sums     string         // the checksum file: SHA256SUMS or SHA512SUMS
	algo     string         // sha256 or sha512
	hexLen   int            // digits of a digest
	// image names the wanted file of a serial: an exact name, or, for a
	// release this package does not know, a pattern.
	image func(serial string) (name string, pattern *regexp.Regexp)
}

// serials lists the serials of the serial directories in l.dir.
func (l sumsLayout) serials(ctx context.Context, src *source) ([]string, error) {
	names, err := src.listDirs(ctx, l.dir)
	if err != nil {
		return nil, err
	}
	var serials []string
	for _, n := range names {
		if s, ok := strings.CutPrefix(n, l.prefix); ok && l.serialRE.MatchString(s) {
			serials = append(serials, s)
		}
	}
	return serials, nil
}

// resolve reads the checksum file of the serial asked for, or of the newest
// serials listed in l.dir (the moving aliases such as latest/ never match a
// serial's shape), and returns the image it lists.
func (l sumsLayout) resolve(ctx context.Context, src *source, q Query) (*Image, error) {
	current := isCurrent(q.Serial)
	candidates := []string{q.Serial}
	if current {
		serials, err := l.serials(ctx, src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("release %q not found: %w", q.Release, err)
			}
			return nil, fmt.Errorf("listing the serial directories: %w", err)
		}
		if len(serials) == 0 {
			return nil, fmt.Errorf("no serial directories (%s%s/) listed in %s", l.prefix, serialShape(q.Distribution), src.url(l.dir))
		}
		sortNewestFirst(serials)
		candidates = serials
		if len(candidates) > maxSerialTries {
			candidates = candidates[:maxSerialTries]
		}
	}
	var misses []string
	for _, serial := range candidates {
		img, err := l.image1(ctx, src, q, serial)
		if err == nil {
			return img, nil
		}
		var miss *missError
		if !current || !errors.As(err, &miss) {
			return nil, err
		}
		misses = append(misses, err.Error())
	}
	return nil, fmt.Errorf("none of the newest %d serials has a %s %s image: %s", len(candidates), q.Variant, q.Arch, strings.Join(misses, "; "))
}

// missError is a serial directory without the image: no checksum file, or
// one that does not list it.
type missError struct{ msg string }

func (e *missError) Error() string { return e.msg }

func (l sumsLayout) image1(ctx context.Context, src *source, q Query, serial string) (*Image, error) {
	serialDir := l.dir + l.prefix + serial + "/"
	sumsRel := serialDir + l.sums
	data, err := src.get(ctx, sumsRel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if isCurrent(q.Serial) {
			return nil, &missError{fmt.Sprintf("serial %s has no %s (%v)", serial, l.sums, err)}
		}
		msg := fmt.Sprintf("serial %s not found: %v", serial, err)
		if serials, lerr := l.serials(ctx, src); lerr == nil {
			msg += fmt.Sprintf(" (newest serials in %s: %s)", src.url(l.dir), newestList(serials, 5))
		}
		return nil, errors.New(msg)
	}
	sums, err := parseSums(data, l.hexLen)
	if err != nil {
		return nil, fmt.Errorf("malformed %s: %v", src.url(sumsRel), err)
	}
	name, pattern := l.image(serial)
	file, digest, ok := findInSums(sums, name, pattern)
	if !ok {
		want := name
		if want == "" {
			want = "a file matching " + pattern.String()
		}
		return nil, &missError{fmt.Sprintf("no %s %s image in serial %s: %s does not list %s", q.Variant, q.Arch, serial, src.url(sumsRel), want)}
	}
	if err := safeRel(serialDir + file); err != nil {
		return nil, fmt.Errorf("malformed %s: %v", src.url(sumsRel), err)
	}
	return &Image{
		URL:         src.url(serialDir + file),
		Checksum:    l.algo + ":" + digest,
		Serial:      serial,
		Name:        file,
		ChecksumURL: src.url(sumsRel),
	}, nil
}

func serialShape(distribution string) string {
	if distribution == Debian {
		return "YYYYMMDD-NNNN"
	}
	return "YYYYMMDD"
}

// findInSums returns the file of sums called name or, when name is "", the
// first one pattern matches.
func findInSums(sums map[string]string, name string, pattern *regexp.Regexp) (string, string, bool) {
	if name != "" {
		d, ok := sums[name]
		return name, d, ok
	}
	var found string
	for n := range sums {
		if pattern.MatchString(n) && (found == "" || n < found) {
			found = n
		}
	}
	return found, sums[found], found != ""
}
