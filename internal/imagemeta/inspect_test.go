package imagemeta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures are real `qemu-img create` outputs (QEMU 7.2):
//
//	qemu-img create -f qcow2 -o compat=0.10,cluster_size=4096 v2.qcow2 1G
//	qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096 v3.qcow2 10G
//	qemu-img create -f qcow2 -o compat=1.1 v3-64k.qcow2 3G
//	qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096 -b v3.qcow2 -F qcow2 overlay.qcow2
//	qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096,compression_type=zstd zstd.qcow2 512M
func TestInspectQemuFixtures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version uint32
		bits    uint32
		size    uint64
		hdrLen  uint32
		backing bool
	}{
		{"v2.qcow2", 2, 12, 1 << 30, 72, false},
		{"v3.qcow2", 3, 12, 10 << 30, 112, false},
		{"v3-64k.qcow2", 3, 16, 3 << 30, 112, false},
		{"overlay.qcow2", 3, 12, 10 << 30, 112, true},
		{"zstd.qcow2", 3, 12, 512 << 20, 112, false},
	} {
		p := filepath.Join("testdata", tc.file)
		im, err := DescribeImage(context.Background(), p, p+".json", []string{"sha256"})
		if err != nil {
			t.Errorf("DescribeImage(%s): %v", tc.file, err)
			continue
		}
		if im.Format != FormatQCOW2 || im.VirtualSizeBytes != tc.size {
			t.Errorf("DescribeImage(%s) = %s, %d; want qcow2, %d", tc.file, im.Format, im.VirtualSizeBytes, tc.size)
		}
		b, _ := os.ReadFile(p)
		h, err := ParseQCOW2Header(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != tc.version || h.ClusterBits != tc.bits || h.HeaderLength != tc.hdrLen || h.HasBackingFile() != tc.backing {
			t.Errorf("%s: header %+v", tc.file, h)
		}
	}
}

func TestInspectRaw(t *testing.T) {
	dir := t.TempDir()
	describe := func(p string) (Image, error) {
		return DescribeImage(context.Background(), p, p+".json", []string{"sha256"})
	}
	// The last is larger than the first cluster DescribeImage keeps.
	for _, data := range [][]byte{nil, []byte("QF"), []byte("QFI\xfa and more bytes"), bytes.Repeat([]byte{0}, 10000), bytes.Repeat([]byte{7}, 3<<20)} {
		p := filepath.Join(dir, "raw.img")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := describe(p)
		if err != nil || im.Format != FormatRaw || im.VirtualSizeBytes != uint64(len(data)) {
			t.Errorf("DescribeImage(%q...) = %s, %d, %v; want raw, %d", data[:min(len(data), 8)], im.Format, im.VirtualSizeBytes, err, len(data))
		}
	}
	if _, err := describe(dir); err == nil {
		t.Error("DescribeImage(directory): want error")
	}
	if _, err := describe(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DescribeImage(missing) err = %v", err)
	}
}

func v3Header(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "v3.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	return b[:4096]
}

func TestInspectMalformed(t *testing.T) {
	be := binary.BigEndian
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"version 1", func(b []byte) []byte { be.PutUint32(b[4:], 1); return b }, "unsupported version 1"},
		{"version 4", func(b []byte) []byte { be.PutUint32(b[4:], 4); return b }, "unsupported version 4"},
		{"cluster_bits 8", func(b []byte) []byte { be.PutUint32(b[20:], 8); return b }, "cluster_bits 8"},
		{"cluster_bits 22", func(b []byte) []byte { be.PutUint32(b[20:], 22); return b }, "cluster_bits 22"},
		{"header_length 100", func(b []byte) []byte { be.PutUint32(b[100:], 100); return b }, "header_length 100"},
		{"header_length 108", func(b []byte) []byte { be.PutUint32(b[100:], 108); return b }, "multiple of 8"},
		{"header_length beyond cluster", func(b []byte) []byte { be.PutUint32(b[100:], 8192); return b }, "exceeds the cluster size"},
		{"crypt_method", func(b []byte) []byte { be.PutUint32(b[32:], 7); return b }, "crypt_method 7"},
		{"refcount_order", func(b []byte) []byte { be.PutUint32(b[96:], 7); return b }, "refcount_order 7"},
		{"huge size", func(b []byte) []byte { be.PutUint64(b[24:], 1<<63); return b }, "virtual size"},
		{"backing name outside cluster", func(b []byte) []byte {
			be.PutUint64(b[8:], 4090)
			be.PutUint32(b[16:], 100)
			return b
		}, "backing file name"},
		{"truncated v2", func(b []byte) []byte { be.PutUint32(b[4:], 2); return b[:50] }, "truncated header"},
		{"truncated v3", func(b []byte) []byte { return b[:90] }, "truncated header"},
		{"truncated magic only", func(b []byte) []byte { return b[:6] }, "truncated header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(v3Header(t))
			p := filepath.Join(t.TempDir(), "bad.qcow2")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := DescribeImage(context.Background(), p, p+".json", []string{"sha256"})
			if !errors.Is(err, ErrMalformedQCOW2) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("DescribeImage = %v; want ErrMalformedQCOW2 mentioning %q and the path", err, tc.want)
			}
		})
	}
}

// A version 3 header longer than the first 4 KiB read must be read whole.
func TestInspectLongHeader(t *testing.T) {
	b := make([]byte, 16384)
	copy(b, v3Header(t))
	binary.BigEndian.PutUint32(b[20:], 16)    // 64 KiB clusters
	binary.BigEndian.PutUint32(b[100:], 8192) // header beyond 4 KiB
	format, vsize, err := InspectReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || format != FormatQCOW2 || vsize != 10<<30 {
		t.Errorf("= %s, %d, %v", format, vsize, err)
	}
	_, _, err = InspectReader(bytes.NewReader(b[:6000]), 6000)
	if !errors.Is(err, ErrMalformedQCOW2) {
		t.Errorf("truncated long header: err = %v", err)
	}
}

func FuzzParseQCOW2Header(f *testing.F) {
	for _, name := range []string{"v2.qcow2", "v3.qcow2", "overlay.qcow2", "zstd.qcow2"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:512])
	}
	f.Add([]byte("QFI\xfb"))
	f.Add([]byte("not qcow2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseQCOW2Header(b)
		if err != nil {
			if h != nil {
				t.Fatal("header returned with an error")
			}
			return
		}
		if h.Version != 2 && h.Version != 3 {
			t.Fatalf("accepted version %d", h.Version)
		}
		if h.ClusterBits < 9 || h.ClusterBits > 21 {
			t.Fatalf("accepted cluster_bits %d", h.ClusterBits)
		}
		if uint64(len(b)) < uint64(h.HeaderLength) || h.HeaderLength < 72 {
			t.Fatalf("header_length %d with %d bytes", h.HeaderLength, len(b))
		}
		if h.Size != binary.BigEndian.Uint64(b[24:32]) {
			t.Fatal("size not read from offset 24")
		}
		// InspectReader must agree with the parser.
		format, vsize, err := InspectReader(bytes.NewReader(b), int64(len(b)))
		if err != nil || format != FormatQCOW2 || vsize != h.Size {
			t.Fatalf("InspectReader = %s, %d, %v", format, vsize, err)
		}
	})
}
