package cidata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const isoBlockSize = 2048

// WriteISO writes the seed as an ISO9660 image with volume label "cidata"
// and Rock Ridge and Joliet names, so that cloud-init sees the files as
// user-data, meta-data, network-config and vendor-data (it does not see the
// plain ISO9660 8.3 names like USER_DAT.;1).
//
// The image is written to a temporary file next to path and renamed over
// path when complete, so an existing file is replaced atomically and a
// failure leaves no partial image. The file's mode is 0644.
func (s *Seed) WriteISO(path string) error {
	return writeISO(path, s.Files())
}

func writeISO(path string, files map[string][]byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("write seed ISO: %q is a directory name", path)
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()

	// go-diskfs builds the tree in a workspace directory and only writes
	// the image in Finalize; it removes the workspace after a successful
	// Finalize only, so we own it and always remove it.
	ws, err := os.MkdirTemp("", "cidata-iso-*")
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	defer os.RemoveAll(ws)
	if err := os.Chmod(ws, 0o755); err != nil { // the root directory's mode in Rock Ridge
		return fmt.Errorf("write seed ISO: %w", err)
	}

	size := int64(64 * 1024) // system area, volume descriptors, directories, path tables
	for _, b := range files {
		size += (int64(len(b)) + isoBlockSize - 1) / isoBlockSize * isoBlockSize
	}
	fsys, err := iso9660.Create(file.New(f, false), size, 0, isoBlockSize, ws)
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, "/\\") {
			return fmt.Errorf("write seed ISO: invalid file name %q", name)
		}
		// go-diskfs takes io/fs-style paths: "user-data", not "/user-data".
		w, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("write seed ISO: %s: %w", name, err)
		}
		_, err = w.Write(files[name])
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			// Rock Ridge records the modes of the workspace files; make
			// them independent of the umask (fsys.Chmod is not
			// implemented).
			err = os.Chmod(filepath.Join(ws, name), 0o644)
		}
		if err != nil {
			return fmt.Errorf("write seed ISO: %s: %w", name, err)
		}
	}
	err = fsys.Finalize(iso9660.FinalizeOptions{
		RockRidge: true,
		Joliet:    true,
		// disk.FilesystemSpec.VolumeLabel is ignored for ISO9660: the
		// label is the volume identifier given here.
		VolumeIdentifier: VolumeLabel,
	})
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}

	// The backing file was sized from an estimate; cut it to the volume
	// size recorded in the primary volume descriptor.
	blocks, err := volumeBlocks(f)
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	if err := f.Truncate(blocks * isoBlockSize); err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write seed ISO: %w", err)
	}
	return nil
}

// volumeBlocks reads the volume space size of the primary volume
// descriptor (sector 16, both-endian uint32 at offset 80).
func volumeBlocks(r io.ReaderAt) (int64, error) {
	pvd := make([]byte, isoBlockSize)
	if _, err := r.ReadAt(pvd, 16*isoBlockSize); err != nil {
		return 0, fmt.Errorf("read primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return 0, errors.New("no primary volume descriptor at sector 16")
	}
	n := int64(binary.LittleEndian.Uint32(pvd[80:84]))
	if n < 18 {
		return 0, fmt.Errorf("implausible volume size of %d blocks", n)
	}
	return n, nil
}

// ReadISO reads the files in the root directory of a seed ISO written by
// [Seed.WriteISO] (or another ISO with Rock Ridge or Joliet names), by name.
// It is meant for tests and debugging.
func ReadISO(path string) (map[string][]byte, error) {
	_, files, err := readISO(path)
	return files, err
}

// readISO also returns the volume label.
func readISO(path string) (string, map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	fsys, err := iso9660.Read(file.New(f, true), fi.Size(), 0, isoBlockSize)
	if err != nil {
		return "", nil, fmt.Errorf("read ISO %s: %w", path, err)
	}
	entries, err := fsys.ReadDir(".")
	if err != nil {
		return "", nil, fmt.Errorf("read ISO %s: %w", path, err)
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fsys.ReadFile(e.Name())
		if err != nil {
			return "", nil, fmt.Errorf("read ISO %s: %s: %w", path, e.Name(), err)
		}
		files[e.Name()] = b
	}
	return strings.TrimRight(fsys.Label(), " \x00"), files, nil
}
