package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepCreateDisk makes the disk the VM runs on, next to the final image (so
// that the final rename is atomic): a qcow2 overlay on the cached source
// image with use_backing_file, otherwise a copy; then grows it to disk_size.
//
// Uses: config, driver, ui, iso_path (the SDK's StepDownload), image_path
// (stepOutputDir).
// Produces: disk_path (stepRun, stepConvert).
type stepCreateDisk struct {
	disk string
}

func (s *stepCreateDisk) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	driver := state.Get("driver").(Driver)
	ui := state.Get("ui").(packersdk.Ui)
	source := state.Get("iso_path").(string)

	info, err := driver.Info(source)
	if err != nil {
		return halt(state, fmt.Errorf("source image %s: %w", source, err))
	}
	if info.Format != "qcow2" && info.Format != "raw" {
		ui.Say(fmt.Sprintf("Source image format is %s; it will be converted", info.Format))
	}

	var size uint64
	if cfg.DiskSize != "" && !cfg.SkipResizeDisk {
		size, _ = parseSize(cfg.DiskSize) // validated in Prepare
		if size < info.VirtualSize {
			return halt(state, fmt.Errorf("disk_size %s (%d bytes) is smaller than the source image's virtual size (%d bytes); disks cannot shrink: remove disk_size or make it larger",
				cfg.DiskSize, size, info.VirtualSize))
		}
	}

	image := state.Get("image_path").(string)
	s.disk = workFile(image, buildingSuffix)
	_ = os.Remove(s.disk) // stepOutputDir has swept a killed build's (and said so)

	if cfg.UseBackingFile {
		abs, err := filepath.Abs(source)
		if err != nil {
			return halt(state, err)
		}
		ui.Say("Creating a qcow2 overlay on the source image...")
		err = driver.Overlay(abs, info.Format, s.disk)
		if err != nil {
			return halt(state, fmt.Errorf("creating the build disk: %w", err))
		}
	} else {
		ui.Say("Copying the source image to the build disk...")
		if err := driver.Convert(ctx, source, info.Format, s.disk, "qcow2", ConvertOptions{}); err != nil {
			return halt(state, fmt.Errorf("creating the build disk: %w", err))
		}
	}
	state.Put("disk_path", s.disk)

	if size > info.VirtualSize {
		ui.Say(fmt.Sprintf("Growing the disk to %s...", cfg.DiskSize))
		if err := driver.Resize(s.disk, "qcow2", size); err != nil {
			return halt(state, fmt.Errorf("disk_size: %w", err))
		}
	}
	return multistep.ActionContinue
}

// Cleanup removes the build disk unless it became the image.
func (s *stepCreateDisk) Cleanup(state multistep.StateBag) {
	if s.disk != "" {
		_ = os.Remove(s.disk)
	}
}
