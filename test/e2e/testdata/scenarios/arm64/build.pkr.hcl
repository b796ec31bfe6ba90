# TestScenarioARM64: an arm64 image built on any host: arch = "arm64" picks
# qemu-system-aarch64, the virt machine, AAVMF (UEFI) and the seed on a
# virtio-scsi CD-ROM; on an x86 host it is emulated (TCG). No Ansible: a
# shell provisioner records what the build guest saw, the reset runs as
# usual and the metadata post-processor records the image in a repository.
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
  description = "The Debian 13 arm64 test cloud image (a local qcow2, UEFI only)."
}

variable "iso_checksum" {
  type        = string
  description = "sha256:<hex> of iso_url."
}

variable "repository" {
  type        = string
  description = "Image repository directory (index.json, SHA256SUMS)."
}

variable "image_id" {
  type        = string
  description = "Directory of this build's image inside the repository."
}

source "cloudimg-kvm" "arm64" {
  arch             = "arm64"
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  # Generous: an emulated arm64 guest on a loaded x86 host is slow to boot.
  ssh_timeout      = "45m"
  output_directory = "${var.repository}/${var.image_id}"
  vm_name          = "arm64.qcow2"
  serial_log_file  = "${path.cwd}/arm64.serial.log"
}

build {
  sources = ["source.cloudimg-kvm.arm64"]

  provisioner "shell" {
    inline = [
      "f=/etc/cloudimg-e2e-build",
      "echo machine=$(uname -m) | sudo -n tee $f >/dev/null",
      "if [ -d /sys/firmware/efi ]; then echo firmware=uefi; else echo firmware=bios; fi | sudo -n tee -a $f >/dev/null",
      "echo console=$(sed -n 's/^\\([a-zA-Z0-9]*\\).*/\\1/p' /proc/consoles | tr '\\n' ' ') | sudo -n tee -a $f >/dev/null",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    labels = {
      scenario = "arm64"
    }
  }
}
