package kvm

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepConvert writes the final image: qemu-img convert of the build disk into
// a temporary file next to it (compacted, compressed if asked, flattened when
// it had a backing file), then an atomic rename to the final name, so no
// half-written image ever carries that name.
//
// Uses: config, driver, ui, disk_path (stepCreateDisk), image_path
// (stepOutputDir), efivars_work (stepEFIVars).
// Produces: efivars_path (Run: the artifact's files).
type stepConvert struct{}

func (s *stepConvert) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	driver := state.Get("driver").(Driver)
	ui := state.Get("ui").(packersdk.Ui)
	disk := state.Get("disk_path").(string)
	image := state.Get("image_path").(string)

	if cfg.SkipCompaction && cfg.Format == "qcow2" {
		if err := placeEFIVars(state); err != nil {
			return halt(state, err)
		}
		if err := os.Rename(disk, image); err != nil {
			return halt(state, fmt.Errorf("moving the image into place: %w", err))
		}
		return multistep.ActionContinue
	}

	tmp := workFile(image, convertingSuffix)
	defer os.Remove(tmp)
	what := "Compacting"
	if cfg.DiskCompression {
		what = "Compacting and compressing"
	}
	ui.Say(fmt.Sprintf("%s the disk into %s (%s)...", what, image, cfg.Format))
	if err := driver.Convert(ctx, disk, "qcow2", tmp, cfg.Format, cfg.convertOptions()); err != nil {
		return halt(state, fmt.Errorf("converting the image: %w", err))
	}
	if err := placeEFIVars(state); err != nil {
		return halt(state, err)
	}
	if err := os.Rename(tmp, image); err != nil {
		return halt(state, fmt.Errorf("moving the image into place: %w", err))
	}
	_ = os.Remove(disk)
	return multistep.ActionContinue
}

// placeEFIVars moves the build's UEFI variables (a work file) beside the
// image as <vm_name>.efivars.fd, just before the image takes its name.
func placeEFIVars(state multistep.StateBag) error {
	work, ok := state.GetOk("efivars_work")
	if !ok {
		return nil
	}
	vars := state.Get("image_path").(string) + ".efivars.fd"
	if err := os.Rename(work.(string), vars); err != nil {
		return fmt.Errorf("moving the UEFI variables into place: %w", err)
	}
	state.Put("efivars_path", vars)
	return nil
}

func (s *stepConvert) Cleanup(multistep.StateBag) {}

// convertOptions are the final conversion's options: compressed as
// disk_compression and disk_compression_type say, and then written out of
// order, which measured a third faster here with zstd and zlib alike; without
// compression it made no measurable difference, so the output keeps the
// guest's cluster order (see "Compression" in the builder's documentation).
func (c *Config) convertOptions() ConvertOptions {
	o := ConvertOptions{Compress: c.DiskCompression, OutOfOrder: c.DiskCompression}
	if o.Compress && c.Format == "qcow2" {
		o.CompressionType = c.DiskCompressionType
	}
	return o
}
