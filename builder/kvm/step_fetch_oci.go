package kvm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
)

// stepFetchOCI is the download step for `iso_url = "oci://…"`: it pulls the
// disk of an image that cloudimg-oci pushed (by digest or tag; the
// platform of the build's arch when the reference names an index),
// checks it against iso_checksum and the image's own sha256 annotation, and
// keeps it in Packer's cache under that sha256, so a second build of the
// same image reads it from there after checking it again. With verify_key
// the manifest's signature and signed provenance in the registry are
// checked first (stepVerifySource leaves oci:// sources to this step).
//
// Uses: config. Produces: iso_path (the cached disk), source_image (the
// artifactstate.SourceImageInfo JSON of what was pulled).
type stepFetchOCI struct{}

func (s *stepFetchOCI) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	url := cfg.ISOUrls[0]
	ref, err := ociregistry.ParseReference(url)
	if err != nil {
		return halt(state, fmt.Errorf("iso_url: %w", err))
	}
	if ref.Reference == "" {
		return halt(state, fmt.Errorf("iso_url: %s names no tag or digest (use the cloudimg-repository data source's url, oci://host/repo@sha256:…)", url))
	}
	client, err := ociregistry.Open(ref, cfg.OCI.Options())
	if err != nil {
		return halt(state, fmt.Errorf("iso_url: %w", err))
	}
	e, err := client.Describe(ctx, ref.Reference, cfg.Arch)
	if err != nil {
		return halt(state, fmt.Errorf("iso_url: %w", err))
	}
	if e.Arch != "" && e.Arch != cfg.Arch {
		return halt(state, fmt.Errorf("iso_url: %s is an %s image; this build's arch is %s", url, e.Arch, cfg.Arch))
	}
	want := strings.TrimPrefix(cfg.ISOChecksum, "sha256:")
	switch {
	case cfg.ISOChecksum == "none":
	case !strings.HasPrefix(cfg.ISOChecksum, "sha256:"):
		return halt(state, fmt.Errorf("iso_checksum: for an oci:// iso_url give \"sha256:<hex>\" (the cloudimg-repository data source's checksum) or \"none\", not %q", cfg.ISOChecksum))
	case want != e.SHA256:
		return halt(state, fmt.Errorf("iso_checksum: %s is sha256:%s by its annotation, iso_checksum says sha256:%s: refusing it", url, e.SHA256, want))
	}
	if len(cfg.verifyKeys) > 0 {
		// Before any byte of the disk: the signed manifest vouches for the
		// disk's digest, which the pull then checks.
		ui.Say("Verifying the source image's signature in the registry (verify_key)...")
		k, err := client.Verify(ctx, e, cfg.verifyKeys, "", nil)
		if err != nil {
			return halt(state, fmt.Errorf("verify_key: source image %s (sha256:%s) refused: %w", e.Ref.URL(), e.SHA256, err))
		}
		ui.Say(fmt.Sprintf("The source image %s is signed with the key %s", e.Ref.URL(), k.Fingerprint))
	}
	cache, err := packersdk.CachePath("cloudimg-oci")
	if err != nil {
		return halt(state, err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return halt(state, fmt.Errorf("the Packer cache directory: %w", err))
	}
	ext := e.Format
	if ext == "" {
		ext = "qcow2"
	}
	path := filepath.Join(cache, e.SHA256+"."+ext)
	if sums, _, err := imagemeta.HashFileContext(ctx, path, []string{"sha256"}); err == nil && sums["sha256"] == e.SHA256 {
		ui.Say(fmt.Sprintf("Using the cached %s (sha256 %s) of %s", path, e.SHA256, e.Ref.URL()))
	} else {
		ui.Say(fmt.Sprintf("Pulling %s (%s layout, sha256 %s) to %s...", e.Ref.URL(), e.Layout, e.SHA256, path))
		if err := pullTo(ctx, client, e, path); err != nil {
			return halt(state, fmt.Errorf("iso_url: %w", err))
		}
	}
	info, _ := json.Marshal(artifactstate.SourceImageInfo{
		Name: e.Name, SHA256: e.SHA256, BuildID: e.BuildID, Labels: e.Labels, Reference: e.Ref.URL(),
	})
	state.Put("source_image", string(info))
	state.Put("iso_path", path)
	return multistep.ActionContinue
}

func (s *stepFetchOCI) Cleanup(multistep.StateBag) {}

// pullTo pulls e's disk into a temporary file beside path and renames it
// there once it is complete and checked; a failed pull leaves nothing.
func pullTo(ctx context.Context, client *ociregistry.Client, e *ociregistry.Entry, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := client.Pull(ctx, e, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
