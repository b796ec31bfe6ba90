# TestScenarioFaults/interrupt: Packer gets Ctrl-C (SIGINT to its process
# group) while a provisioner runs; the build must stop promptly and leave
# neither QEMU nor an image nor the build disk behind.
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
}

build {
  sources = ["source.cloudimg-kvm.fault"]

  provisioner "shell" {
    # The marker is computed by the guest's shell, so the test cannot match
    # it in an echo of the command itself.
    inline = [
      "echo \"e2e-provisioning-started-$((6 * 7))\"",
      "sleep 600",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}
}
