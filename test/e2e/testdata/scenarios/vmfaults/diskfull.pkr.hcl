# TestScenarioFaults/disk_full: output_directory is on a small tmpfs that the
# test fills while a provisioner writes to the guest's disk; QEMU pauses the
# guest on the write error (ENOSPC), and the build must fail at once saying
# that the filesystem is full, instead of waiting forever on the command.
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "iso_url" {
  type = string
}

variable "iso_checksum" {
  type = string
}

variable "output_directory" {
  type = string
}

source "cloudimg-kvm" "full" {
  iso_url      = var.iso_url
  iso_checksum = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  vm_name          = "full.qcow2"
  # The build disk is an overlay: only what the guest writes lands on the tmpfs.
  use_backing_file = true
  serial_log_file  = "${path.cwd}/full.serial.log"
}

build {
  sources = ["source.cloudimg-kvm.full"]

  provisioner "shell" {
    # Writes past the guest's page cache until the disk stops it: the test
    # fills the tmpfs once the marker shows.
    inline = [
      "echo \"e2e-full-provisioning-$((6 * 7))\"",
      "dd if=/dev/urandom of=/var/tmp/fill bs=1M count=1200 oflag=direct status=none",
      "echo e2e-full-dd-returned",
    ]
  }
}
