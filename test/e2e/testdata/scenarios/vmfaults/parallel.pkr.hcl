# TestScenarioFaults/parallel_qemu_killed: four builds from one source block
# without vm_name into one output_directory. They would all write
# packer-node: one gets the name, the three others must fail at once saying
# why, without touching the first one's files. The test then kills the
# remaining build's QEMU with SIGKILL while its provisioner runs: the build
# must fail at once, saying so.
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

source "cloudimg-kvm" "node" {
  iso_url      = var.iso_url
  iso_checksum = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  serial_log_file  = "${path.cwd}/${source.name}.serial.log"
}

build {
  source "source.cloudimg-kvm.node" {
    name = "a"
  }
  source "source.cloudimg-kvm.node" {
    name = "b"
  }
  source "source.cloudimg-kvm.node" {
    name = "c"
  }
  source "source.cloudimg-kvm.node" {
    name = "d"
  }

  provisioner "shell" {
    inline = [
      "echo \"e2e-parallel-provisioning-$((6 * 7))\"",
      "sleep 600",
    ]
  }
}
