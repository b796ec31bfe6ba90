package imagemeta

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Hashing pipeline parameters. One reader fills buffers taken from a ring of
// hashBufCount buffers of hashBufSize bytes; every digest has its own
// goroutine consuming the same buffers, and a buffer goes back to the ring
// once all digests are done with it. Memory is therefore bounded by
// hashBufCount*hashBufSize whatever the input size, and reading overlaps
// hashing.
const (
	hashBufSize  = 2 << 20
	hashBufCount = 4
	minBufSize   = 64 << 10
)

var hashFactories = map[string]func() hash.Hash{
	"md5":    md5.New,
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// SupportedAlgorithms returns the digest names accepted by HashFile and
// HashReader, sorted. "md5" and "sha1" are offered for compatibility with
// tools that still ask for them, not for integrity against an adversary.
func SupportedAlgorithms() []string {
	names := make([]string, 0, len(hashFactories))
	for n := range hashFactories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultAlgorithms returns the digests recorded when the user asks for none:
// sha256 and sha512.
func DefaultAlgorithms() []string { return []string{"sha256", "sha512"} }

// ErrFileChanged is returned by HashFile when the file's size changed while it
// was being read, so the digests describe no consistent content.
var ErrFileChanged = errors.New("file changed while it was being hashed")

// normalizeAlgorithms lower-cases, de-duplicates and validates algos,
// keeping the caller's order.
func normalizeAlgorithms(algos []string) ([]string, error) {
	if len(algos) == 0 {
		return nil, errors.New("imagemeta: no checksum algorithm requested")
	}
	seen := make(map[string]bool, len(algos))
	out := make([]string, 0, len(algos))
	for _, a := range algos {
		n := strings.ToLower(strings.TrimSpace(a))
		if _, ok := hashFactories[n]; !ok {
			return nil, fmt.Errorf("imagemeta: unsupported checksum algorithm %q (supported: %s)",
				a, strings.Join(SupportedAlgorithms(), ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// HashFile computes the digests named in algos (see SupportedAlgorithms;
// names are case-insensitive) of the file at path, reading it once. It
// returns a map from algorithm name (lower case) to lower-case hex digest and
// the number of bytes hashed.
//
// The digests run concurrently, one goroutine each, over a small ring of
// large buffers filled by a single reader, so the wall time is roughly that of
// the slowest digest and memory stays bounded whatever the file size.
func HashFile(path string, algos []string) (sums map[string]string, size int64, err error) {
	return HashFileContext(context.Background(), path, algos)
}

// HashFileContext is HashFile with cancellation: it stops between two
// buffers once ctx is done and returns ctx.Err().
func HashFileContext(ctx context.Context, path string, algos []string) (map[string]string, int64, error) {
	sums, n, _, err := hashFileHead(ctx, path, algos, nil)
	return sums, n, err
}

// hashFileHead is HashFileContext that also copies the file's first
// len(head) bytes into head as they pass (fewer when the file is shorter:
// headN says how many), so that a caller can read the file's header from
// the same read.
func hashFileHead(ctx context.Context, path string, algos []string, head []byte) (sums map[string]string, size int64, headN int, err error) {
	names, err := normalizeAlgorithms(algos)
	if err != nil {
		return nil, 0, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	if fi.IsDir() {
		return nil, 0, 0, fmt.Errorf("imagemeta: %s is a directory, not an image file", path)
	}
	bufSize := hashBufSize
	regular := fi.Mode().IsRegular()
	if regular && fi.Size() < int64(bufSize) {
		// Small file: no need for megabytes of buffers. +1 so that the
		// first read already sees EOF.
		bufSize = max(int(fi.Size())+1, minBufSize)
	}
	hr := &headReader{r: f, head: head}
	sums, n, err := hashStream(ctx, hr, names, bufSize)
	if err != nil {
		return nil, n, 0, fmt.Errorf("imagemeta: hashing %s: %w", path, err)
	}
	if regular {
		after, err := f.Stat()
		if err != nil {
			return nil, n, 0, err
		}
		if n != fi.Size() || after.Size() != n || !after.ModTime().Equal(fi.ModTime()) {
			return nil, n, 0, fmt.Errorf("imagemeta: hashing %s: %w (read %d bytes, size was %d then %d)",
				path, ErrFileChanged, n, fi.Size(), after.Size())
		}
	}
	return sums, n, hr.n, nil
}

// headReader passes r through, copying the first len(head) bytes read
// into head; n counts them.
type headReader struct {
	r    io.Reader
	head []byte
	n    int
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += copy(h.head[h.n:], p[:n])
	return n, err
}

// HashReader is HashFile for an arbitrary reader: it consumes r to EOF and
// returns the digests and the number of bytes read.
func HashReader(r io.Reader, algos []string) (sums map[string]string, size int64, err error) {
	return HashReaderContext(context.Background(), r, algos)
}

// HashReaderContext is HashReader with cancellation.
func HashReaderContext(ctx context.Context, r io.Reader, algos []string) (map[string]string, int64, error) {
	names, err := normalizeAlgorithms(algos)
	if err != nil {
		return nil, 0, err
	}
	return hashStream(ctx, r, names, hashBufSize)
}

// chunk is one buffer of the ring; refs counts the digests that still have to
// consume it.
type chunk struct {
	buf  []byte
	n    int
	refs atomic.Int32
}

func hashStream(ctx context.Context, r io.Reader, names []string, bufSize int) (map[string]string, int64, error) {
	hashes := make([]hash.Hash, len(names))
	for i, n := range names {
		hashes[i] = hashFactories[n]()
	}

	// free is the ring: buffers are allocated lazily (a small input uses
	// one) and never more than hashBufCount of them, so neither free nor
	// the work channels can ever block a sender.
	free := make(chan *chunk, hashBufCount)
	allocated := 0
	work := make([]chan *chunk, len(hashes))
	var wg sync.WaitGroup
	for i, h := range hashes {
		ch := make(chan *chunk, hashBufCount)
		work[i] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				h.Write(c.buf[:c.n]) // hash.Hash.Write never fails
				if c.refs.Add(-1) == 0 {
					free <- c
				}
			}
		}()
	}

	var total int64
	var err error
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		var c *chunk
		select {
		case c = <-free:
		default:
			if allocated < hashBufCount {
				allocated++
				c = &chunk{buf: make([]byte, bufSize)}
			} else {
				select {
				case c = <-free:
				case <-ctx.Done():
				}
			}
		}
		if c == nil {
			err = ctx.Err()
			break
		}
		n, rerr := io.ReadFull(r, c.buf)
		if n > 0 {
			c.n = n
			total += int64(n)
			c.refs.Store(int32(len(work)))
			for _, ch := range work {
				ch <- c
			}
		} else {
			free <- c
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	for _, ch := range work {
		close(ch)
	}
	wg.Wait()
	if err != nil {
		return nil, total, err
	}
	sums := make(map[string]string, len(hashes))
	for i, h := range hashes {
		sums[names[i]] = hex.EncodeToString(h.Sum(nil))
	}
	return sums, total, nil
}
