package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/provenance"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/sbom"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/version"
)

// buildRecord is what every image of one artifact shares: the build's
// metadata (each image gets a copy), its firmware, the guest facts (nil
// without the reset), the builder id, the repository (nil without
// repository) and keep_last counted in images (0 keeps all).
type buildRecord struct {
	doc       imagemeta.Metadata
	firmware  string
	facts     *artifactstate.Facts
	builderID string
	repo      *imagemeta.Repo
	keep      int
}

// imageRecord records one image of an artifact: its SBOM, provenance and
// bundles, then the metadata file that lists them (output, rendered for
// this image), then its repository entry. Each document is written, hashed
// and listed once, by write.
type imageRecord struct {
	p     *PostProcessor
	ui    packersdk.Ui
	build *buildRecord
	image string             // the image file, as the artifact names it
	out   string             // its metadata file
	doc   imagemeta.Metadata // this image's metadata

	sidecars []imagemeta.Sidecar // documents written, paths as written
	written  []string            // files written, the metadata file first
}

// newImageRecord checks that image is a regular file and renders output
// for it ({{ .ImagePath }}, {{ .ImageName }}, {{ .BuildName }}) in a copy
// of the template context, which stays the post-processor's.
func (p *PostProcessor) newImageRecord(ui packersdk.Ui, build *buildRecord, image string) (*imageRecord, error) {
	c := &p.config
	if st, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("cloudimg-metadata: image file: %w", err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("cloudimg-metadata: %s is not a regular file", image)
	}
	ictx := c.ctx
	ictx.Data = map[string]string{"ImagePath": image, "ImageName": filepath.Base(image), "BuildName": c.PackerBuildName}
	out, err := interpolate.Render(c.Output, &ictx)
	if err != nil {
		return nil, fmt.Errorf("cloudimg-metadata: output: %w", err)
	}
	return &imageRecord{p: p, ui: ui, build: build, image: image, out: out, doc: build.doc}, nil
}

// run hashes the image, writes its documents (made first, signed second,
// written third: a signed document is written as the exact bytes that were
// signed), then its metadata file, then adds it to the repository.
func (r *imageRecord) run(ctx context.Context) error {
	if err := r.describe(ctx); err != nil {
		return err
	}
	docs, err := r.documents()
	if err != nil {
		return err
	}
	if r.p.signer != nil {
		bundles, err := r.p.sign(ctx, r.image, r.doc.Image.Checksums["sha256"], docs)
		if err != nil {
			return fmt.Errorf("cloudimg-metadata: signing %s: %w", r.image, err)
		}
		r.ui.Say(fmt.Sprintf("Signed %s and its documents with the key sha256:%s", filepath.Base(r.image), r.p.signer.Fingerprint()))
		docs = append(docs, bundles...)
		r.doc.Signing = &imagemeta.Signing{KeyFingerprint: r.p.signer.Fingerprint()}
	}
	for _, d := range docs {
		if err := r.write(d); err != nil {
			return err
		}
	}
	if err := r.writeMetadata(); err != nil {
		return err
	}
	if r.build.repo != nil {
		return r.addToRepository()
	}
	return nil
}

// describe hashes the image (checksum_types) into the metadata's image.
func (r *imageRecord) describe(ctx context.Context) error {
	c := &r.p.config
	r.ui.Say(fmt.Sprintf("Hashing %s (%s)...", r.image, strings.Join(c.ChecksumTypes, ", ")))
	img, err := imagemeta.DescribeImage(ctx, r.image, r.out, c.ChecksumTypes)
	if err != nil {
		return fmt.Errorf("cloudimg-metadata: %s: %w", r.image, err)
	}
	img.Name = c.ImageName
	img.Firmware = r.build.firmware
	img.Arch = r.doc.Image.Arch
	r.doc.Image = img
	return nil
}

// documents makes the SBOM (sbom; none without guest facts) and the
// provenance (unless provenance = false) of the image, not yet written.
func (r *imageRecord) documents() ([]document, error) {
	c := &r.p.config
	var docs []document
	subject, sum := filepath.Base(r.image), r.doc.Image.Checksums["sha256"]
	if r.build.facts != nil && c.SBOM != SBOMNone {
		in := sbom.Input{
			Image:   sbom.Image{Name: subject, SHA256: sum},
			Facts:   r.build.facts,
			Tool:    sbom.Tool{Name: "packer-plugin-cloudimg", Version: version.PluginVersion.FormattedVersion()},
			Created: r.doc.Build.FinishedAt,
		}
		kind, path, gen := imagemeta.SidecarCycloneDX, r.image+".cdx.json", sbom.CycloneDX
		if c.SBOM == SBOMSPDX {
			kind, path, gen = imagemeta.SidecarSPDX, r.image+".spdx.json", sbom.SPDX
		}
		b, err := gen(in)
		if err != nil {
			return nil, fmt.Errorf("cloudimg-metadata: %w", err)
		}
		docs = append(docs, document{kind, path, b})
	}
	if !c.Provenance.False() { // default true
		b, err := provenance.Statement(r.p.provenanceInput(subject, sum, r.build.builderID, &r.doc))
		if err != nil {
			return nil, fmt.Errorf("cloudimg-metadata: %w", err)
		}
		docs = append(docs, document{imagemeta.SidecarProvenance, r.image + ".intoto.json", b})
	}
	return docs, nil
}

// write writes one document, and lists it with its SHA-256 as a sidecar.
func (r *imageRecord) write(d document) error {
	if err := imagemeta.WriteFile(d.path, d.data); err != nil {
		return fmt.Errorf("cloudimg-metadata: writing %s: %w", d.path, err)
	}
	sum := sha256.Sum256(d.data)
	r.sidecars = append(r.sidecars, imagemeta.Sidecar{Kind: d.kind, Path: d.path, SHA256: hex.EncodeToString(sum[:])})
	r.written = append(r.written, d.path)
	r.ui.Say("Wrote " + d.path)
	return nil
}

// writeMetadata writes the metadata file, listing the documents written so
// far relative to it; it is itself listed last (the repository entry's
// sidecars include it) and first among the files written.
func (r *imageRecord) writeMetadata() error {
	for _, sc := range r.sidecars {
		rel, err := imagemeta.RelativePath(filepath.Dir(r.out), sc.Path)
		if err != nil {
			return fmt.Errorf("cloudimg-metadata: %w", err)
		}
		r.doc.Sidecars = append(r.doc.Sidecars, imagemeta.Sidecar{Kind: sc.Kind, Path: rel, SHA256: sc.SHA256})
	}
	b, err := imagemeta.MarshalMetadata(&r.doc)
	if err != nil {
		return fmt.Errorf("cloudimg-metadata: %w", err)
	}
	if err := r.write(document{imagemeta.SidecarMetadata, r.out, b}); err != nil {
		return err
	}
	r.written = append([]string{r.out}, r.written[:len(r.written)-1]...)
	return nil
}

// addToRepository adds the image with its sidecars (those inside the
// repository) to the repository and applies keep_last.
func (r *imageRecord) addToRepository() error {
	c := &r.p.config
	entry := imagemeta.IndexEntry{
		Name:      c.ImageName,
		Labels:    c.Labels,
		Checksums: r.doc.Image.Checksums,
		Size:      r.doc.Image.SizeBytes,
		Firmware:  r.build.firmware,
		Created:   r.doc.Build.FinishedAt,
		// The node's /etc/cloudimg/image.json names these two.
		BuildID:    r.doc.Build.PackerRunUUID,
		SourceName: r.doc.Build.SourceName,
	}
	// Add takes a relative path as relative to the repository; the
	// artifact's is relative to where Packer runs.
	abs, err := filepath.Abs(r.image)
	if err != nil {
		return fmt.Errorf("cloudimg-metadata: %w", err)
	}
	for _, sc := range r.sidecars {
		if sc.Path, err = filepath.Abs(sc.Path); err != nil {
			return fmt.Errorf("cloudimg-metadata: %w", err)
		}
		if !inside(c.Repository, sc.Path) {
			r.ui.Say(fmt.Sprintf("Warning: %s is outside the repository %s: not listed in its index", sc.Path, c.Repository))
			continue
		}
		entry.Sidecars = append(entry.Sidecars, sc)
	}
	removed, err := r.build.repo.AddKeepLast(entry, r.doc.Image.Checksums["sha256"], abs, r.build.keep)
	if err != nil {
		return fmt.Errorf("cloudimg-metadata: repository %s: %w", c.Repository, err)
	}
	r.ui.Say(fmt.Sprintf("Added %s to the repository %s (index.json, SHA256SUMS)", filepath.Base(r.image), c.Repository))
	for _, rm := range removed {
		r.ui.Say(fmt.Sprintf("keep_last = %d: removed the older image %s of %q %s from the repository (deleted %s)",
			c.KeepLast, rm.Entry.Path, rm.Entry.Name, imagemeta.FormatLabels(rm.Entry.Labels), strings.Join(append(rm.Files, rm.Dirs...), ", ")))
	}
	return nil
}
