# TestScenarioUEFI: the builder's other machine shapes: UEFI firmware (OVMF),
# the disk on virtio-scsi, a qcow2 overlay on the cached source image
# (use_backing_file) grown to disk_size, a compressed output (zstd, the
# default disk_compression_type). The shell provisioner records what the
# build guest saw; the reset runs as usual.
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "iso_url" {
  type        = string
  description = "The Debian 12 test cloud image (a local qcow2, BIOS and UEFI bootable)."
}

variable "iso_checksum" {
  type        = string
  description = "sha256:<hex> of iso_url."
}

variable "output_directory" {
  type = string
}

source "cloudimg-kvm" "uefi" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  vm_name          = "uefi.qcow2"
  serial_log_file  = "${path.cwd}/uefi.serial.log"

  firmware         = "uefi"
  disk_interface   = "virtio-scsi"
  use_backing_file = true
  disk_size        = "3G"
  disk_compression = true
}

build {
  sources = ["source.cloudimg-kvm.uefi"]

  provisioner "shell" {
    inline = [
      "f=/etc/cloudimg-e2e-build",
      "if [ -d /sys/firmware/efi ]; then echo firmware=uefi; else echo firmware=bios; fi | sudo -n tee $f >/dev/null",
      "echo root=$(findmnt -no SOURCE /) | sudo -n tee -a $f >/dev/null",
      "if ls /sys/bus/virtio/drivers/virtio_scsi | grep -q '^virtio'; then echo bus=virtio-scsi; else echo bus=other; fi | sudo -n tee -a $f >/dev/null",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {}
}
