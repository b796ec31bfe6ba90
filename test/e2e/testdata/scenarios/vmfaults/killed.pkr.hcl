# TestScenarioFaults/killed: builds killed with SIGKILL. Packer alone, while
# a provisioner runs: the plugin cleans up itself. The whole process group,
# once QEMU runs: QEMU (in a group of its own) must die with the plugin, and
# the next build, with another vm_name into the same directory, removes the
# killed build's work files and temporary directory; it then fails at once
# (disk_size smaller than the source) to keep it short.
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

variable "vm_name" {
  type = string
}

variable "disk_size" {
  type    = string
  default = ""
}

source "cloudimg-kvm" "killed" {
  iso_url      = var.iso_url
  iso_checksum = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  vm_name          = var.vm_name
  disk_size        = var.disk_size
  serial_log_file  = "${path.cwd}/${var.vm_name}.serial.log"
}

build {
  sources = ["source.cloudimg-kvm.killed"]

  provisioner "shell" {
    # The marker is computed by the guest's shell, so the test cannot match
    # it in an echo of the command itself.
    inline = [
      "echo \"e2e-killed-provisioning-$((6 * 7))\"",
      "sleep 600",
    ]
  }
}
