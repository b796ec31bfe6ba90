package imagemeta

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func wantSums(b []byte) map[string]string {
	s256 := sha256.Sum256(b)
	s512 := sha512.Sum512(b)
	s1 := sha1.Sum(b)
	m5 := md5.Sum(b)
	return map[string]string{
		"sha256": hex.EncodeToString(s256[:]),
		"sha512": hex.EncodeToString(s512[:]),
		"sha1":   hex.EncodeToString(s1[:]),
		"md5":    hex.EncodeToString(m5[:]),
	}
}

// oneByteReader returns short reads to exercise partial buffers.
type shortReader struct {
	r io.Reader
	n int
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func TestHashMatchesStdlib(t *testing.T) {
	all := SupportedAlgorithms()
	sizes := []int{0, 1, 63, 64, 4095, minBufSize, minBufSize + 1, hashBufSize - 1, hashBufSize, hashBufSize + 1, 2*hashBufSize + 17}
	dir := t.TempDir()
	for i, n := range sizes {
		data := randomBytes(n, uint64(i))
		want := wantSums(data)

		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, size, err := HashFile(p, all)
		if err != nil {
			t.Fatalf("HashFile(%d bytes): %v", n, err)
		}
		if size != int64(n) {
			t.Errorf("HashFile size = %d, want %d", size, n)
		}
		for a, w := range want {
			if got[a] != w {
				t.Errorf("HashFile %d bytes %s = %s, want %s", n, a, got[a], w)
			}
		}

		got, size, err = HashReader(&shortReader{r: strings.NewReader(string(data)), n: 777}, []string{"SHA512", "sha256", "sha256"})
		if err != nil {
			t.Fatalf("HashReader(%d bytes): %v", n, err)
		}
		if size != int64(n) || len(got) != 2 || got["sha256"] != want["sha256"] || got["sha512"] != want["sha512"] {
			t.Errorf("HashReader(%d bytes) = %v, %d", n, got, size)
		}
	}
}

// Tiny buffers: many trips around the ring, partial last buffer.
func TestHashRingWraps(t *testing.T) {
	data := randomBytes(100*1000+3, 7)
	want := wantSums(data)
	for _, bufSize := range []int{1, 7, 4096} {
		got, n, err := hashStream(context.Background(), &shortReader{r: strings.NewReader(string(data)), n: 1000}, SupportedAlgorithms(), bufSize)
		if err != nil || n != int64(len(data)) {
			t.Fatal(err, n)
		}
		for a, w := range want {
			if got[a] != w {
				t.Errorf("bufSize %d: %s = %s, want %s", bufSize, a, got[a], w)
			}
		}
	}
}

func TestHashAlgorithmErrors(t *testing.T) {
	if _, _, err := HashReader(strings.NewReader("x"), nil); err == nil {
		t.Error("no algorithm: want error")
	}
	_, _, err := HashReader(strings.NewReader("x"), []string{"sha256", "crc32"})
	if err == nil || !strings.Contains(err.Error(), "crc32") || !strings.Contains(err.Error(), "sha512") {
		t.Errorf("unknown algorithm: error %v should name it and list the supported ones", err)
	}
	if _, _, err := HashFile(t.TempDir(), []string{"sha256"}); err == nil {
		t.Error("directory: want error")
	}
	if _, _, err := HashFile(filepath.Join(t.TempDir(), "missing"), []string{"sha256"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

type failingReader struct{ after int }

var errBoom = errors.New("boom")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errBoom
	}
	n := min(len(p), f.after)
	f.after -= n
	return n, nil
}

func TestHashReadErrorAndCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	_, _, err := HashReader(&failingReader{after: 5*hashBufSize + 3}, []string{"sha256", "sha512"})
	if !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = HashReaderContext(ctx, io.LimitReader(zeroReader{}, 1<<30), []string{"sha256"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	// A hasher may still be returning after its wg.Done: give it time.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines leaked: %d before, %d after", before, after)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The pipeline must not allocate in proportion to the input.
func TestHashMemoryBounded(t *testing.T) {
	const n = 48 << 20
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	_, size, err := HashReader(io.LimitReader(zeroReader{}, n), []string{"sha256", "sha512"})
	runtime.ReadMemStats(&m1)
	if err != nil || size != n {
		t.Fatal(err, size)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > hashBufCount*hashBufSize+1<<20 {
		t.Errorf("hashing %d bytes allocated %d bytes, want at most the %d-byte ring",
			n, alloc, hashBufCount*hashBufSize)
	}
}

func BenchmarkHashFile(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "bench.img")
	if err := os.WriteFile(p, randomBytes(size, 42), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, algos := range [][]string{{"sha256"}, {"sha512"}, {"sha256", "sha512"}} {
		b.Run(strings.Join(algos, "+"), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, _, err := HashFile(p, algos); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
