package imagemeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Image format names returned by InspectReader.
const (
	FormatQCOW2 = "qcow2"
	FormatRaw   = "raw"
)

// qcow2 header layout (docs/interop/qcow2.txt in QEMU). All fields are
// big-endian.
const (
	qcow2Magic         = "QFI\xfb"
	qcow2V2HeaderLen   = 72  // fixed length of a version 2 header
	qcow2V3MinHeader   = 104 // minimum header_length of a version 3 header
	qcow2MinCluster    = 9   // 512-byte clusters
	qcow2MaxCluster    = 21  // 2 MiB clusters
	qcow2MaxRefcountOr = 6   // 64-bit refcounts
	qcow2MaxCrypt      = 2   // 0 none, 1 AES (legacy), 2 LUKS
	// qcow2MaxBackingName is QEMU's limit on the backing file name length.
	qcow2MaxBackingName = 1023
)

// ErrMalformedQCOW2 is wrapped by the errors InspectReader and ParseQCOW2Header
// return for a file that starts with the qcow2 magic but whose header is not
// a valid qcow2 version 2 or 3 header.
var ErrMalformedQCOW2 = errors.New("malformed qcow2 header")

// QCOW2Header holds the qcow2 header fields this package validates or
// reports.
type QCOW2Header struct {
	// Version is 2 or 3.
	Version uint32
	// BackingFileOffset and BackingFileSize locate the backing file name;
	// an offset of 0 means the image has no backing file.
	BackingFileOffset uint64
	BackingFileSize   uint32
	// ClusterBits is log2 of the cluster size (9..21).
	ClusterBits uint32
	// Size is the virtual disk size in bytes.
	Size uint64
	// CryptMethod is 0 (none), 1 (legacy AES) or 2 (LUKS).
	CryptMethod uint32
	// IncompatibleFeatures, CompatibleFeatures and AutoclearFeatures are
	// the version 3 feature bitmaps (zero for version 2).
	IncompatibleFeatures uint64
	CompatibleFeatures   uint64
	AutoclearFeatures    uint64
	// RefcountOrder is log2 of the refcount width in bits (4 for version 2).
	RefcountOrder uint32
	// HeaderLength is the header length in bytes (72 for version 2).
	HeaderLength uint32
}

// HasBackingFile reports whether the image is an overlay that needs a
// backing file to be read.
func (h *QCOW2Header) HasBackingFile() bool { return h.BackingFileOffset != 0 }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedQCOW2, fmt.Sprintf(format, args...))
}

// ParseQCOW2Header parses and validates the qcow2 header at the start of b.
// b must hold at least the whole header (72 bytes for version 2,
// header_length bytes for version 3). Errors wrap ErrMalformedQCOW2, except
// when b does not start with the qcow2 magic at all.
func ParseQCOW2Header(b []byte) (*QCOW2Header, error) {
	if len(b) < 4 || string(b[:4]) != qcow2Magic {
		return nil, errors.New("not a qcow2 image (magic QFI\\xfb not found)")
	}
	if len(b) < 8 {
		return nil, malformed("truncated header: %d bytes, the version field needs 8", len(b))
	}
	be := binary.BigEndian
	h := &QCOW2Header{Version: be.Uint32(b[4:8])}
	if h.Version != 2 && h.Version != 3 {
		return nil, malformed("unsupported version %d (only 2 and 3 exist)", h.Version)
	}
	if len(b) < qcow2V2HeaderLen {
		return nil, malformed("truncated header: %d bytes, a version %d header needs at least %d",
			len(b), h.Version, qcow2V2HeaderLen)
	}
	h.BackingFileOffset = be.Uint64(b[8:16])
	h.BackingFileSize = be.Uint32(b[16:20])
	h.ClusterBits = be.Uint32(b[20:24])
	h.Size = be.Uint64(b[24:32])
	h.CryptMethod = be.Uint32(b[32:36])
	h.HeaderLength = qcow2V2HeaderLen
	h.RefcountOrder = 4

	if h.ClusterBits < qcow2MinCluster || h.ClusterBits > qcow2MaxCluster {
		return nil, malformed("cluster_bits %d out of range %d..%d",
			h.ClusterBits, qcow2MinCluster, qcow2MaxCluster)
	}
	clusterSize := uint64(1) << h.ClusterBits
	if h.CryptMethod > qcow2MaxCrypt {
		return nil, malformed("unknown crypt_method %d", h.CryptMethod)
	}
	if h.Size > 1<<63-1 {
		return nil, malformed("virtual size %d does not fit in a signed 64-bit integer", h.Size)
	}

	if h.Version == 3 {
		if len(b) < qcow2V3MinHeader {
			return nil, malformed("truncated header: %d bytes, a version 3 header needs at least %d",
				len(b), qcow2V3MinHeader)
		}
		h.IncompatibleFeatures = be.Uint64(b[72:80])
		h.CompatibleFeatures = be.Uint64(b[80:88])
		h.AutoclearFeatures = be.Uint64(b[88:96])
		h.RefcountOrder = be.Uint32(b[96:100])
		h.HeaderLength = be.Uint32(b[100:104])
		if h.HeaderLength < qcow2V3MinHeader {
			return nil, malformed("header_length %d is below the version 3 minimum of %d",
				h.HeaderLength, qcow2V3MinHeader)
		}
		if h.HeaderLength%8 != 0 {
			return nil, malformed("header_length %d is not a multiple of 8", h.HeaderLength)
		}
		if uint64(h.HeaderLength) > clusterSize {
			return nil, malformed("header_length %d exceeds the cluster size %d", h.HeaderLength, clusterSize)
		}
		if uint64(len(b)) < uint64(h.HeaderLength) {
			return nil, malformed("truncated header: %d bytes, header_length says %d", len(b), h.HeaderLength)
		}
		if h.RefcountOrder > qcow2MaxRefcountOr {
			return nil, malformed("refcount_order %d exceeds %d", h.RefcountOrder, qcow2MaxRefcountOr)
		}
	}

	if h.BackingFileOffset != 0 {
		if h.BackingFileSize == 0 || h.BackingFileSize > qcow2MaxBackingName {
			return nil, malformed("backing file name length %d out of range 1..%d",
				h.BackingFileSize, qcow2MaxBackingName)
		}
		if h.BackingFileOffset < uint64(h.HeaderLength) ||
			h.BackingFileOffset+uint64(h.BackingFileSize) > clusterSize {
			return nil, malformed("backing file name at offset %d (+%d) lies outside the first cluster",
				h.BackingFileOffset, h.BackingFileSize)
		}
	}
	return h, nil
}

// InspectReader reports the format of an image of the given size, read
// through r, and its virtual size in bytes: for qcow2 (version 2 or 3,
// recognised by the magic "QFI\xfb") the disk size recorded in the header,
// after validating the header; for anything else format "raw" and the size.
// An image that carries the qcow2 magic but a broken header is an error
// wrapping ErrMalformedQCOW2, never silently reported as raw.
func InspectReader(r io.ReaderAt, size int64) (format string, virtualSize uint64, err error) {
	// The header must fit in the first cluster, at most 2 MiB; in
	// practice header_length is a few hundred bytes, so read 4 KiB and
	// more only if header_length asks for it.
	buf := make([]byte, 4096)
	n, err := r.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return "", 0, err
	}
	buf = buf[:n]
	if n < 4 || string(buf[:4]) != qcow2Magic {
		if size < 0 {
			return "", 0, fmt.Errorf("negative size %d", size)
		}
		return FormatRaw, uint64(size), nil
	}
	if n >= qcow2V3MinHeader && binary.BigEndian.Uint32(buf[4:8]) == 3 {
		if hl := binary.BigEndian.Uint32(buf[100:104]); hl > uint32(n) && hl <= 1<<qcow2MaxCluster {
			big := make([]byte, hl)
			m, err := r.ReadAt(big, 0)
			if err != nil && err != io.EOF {
				return "", 0, err
			}
			buf = big[:m]
		}
	}
	h, err := ParseQCOW2Header(buf)
	if err != nil {
		return "", 0, err
	}
	return FormatQCOW2, h.Size, nil
}
