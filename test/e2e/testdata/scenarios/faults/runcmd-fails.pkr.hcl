# TestScenarioFaults/runcmd_fails: the user's runcmd fails during the build
# boot, so cloud-init ends in error and the build must fail, saying why.
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

source "cloudimg-kvm" "fault" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  vm_name          = "fault.qcow2"
  serial_log_file  = "${path.cwd}/fault.serial.log"
  user_data        = <<-EOT
    #cloud-config
    runcmd:
      - [sh, -c, "echo e2e-runcmd-boom >&2; exit 3"]
  EOT
}

build {
  sources = ["source.cloudimg-kvm.fault"]

  provisioner "shell" {
    inline = ["echo this provisioner must never run"]
  }

  provisioner "cloudimg-cloudinit-reset" {}
}
