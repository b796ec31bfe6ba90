# The builder side of `make bench`: the same image and provisioning as floor.sh.
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "image" { type = string }
variable "checksum" { type = string }
variable "output" { type = string }

source "cloudimg-kvm" "bench" {
  iso_url          = var.image
  iso_checksum     = var.checksum
  output_directory = var.output
  vm_name          = "bench.qcow2"
}

build {
  sources = ["source.cloudimg-kvm.bench"]
  provisioner "shell" {
    inline = ["echo bench | sudo tee /etc/bench-marker >/dev/null", "sudo sync"]
  }
}
