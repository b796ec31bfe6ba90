# The cloudimg-kvm side of `make bench`.
#  - cloudimg-kvm.floor: the same provisioning as floor.sh (no reset, no
#    metadata), compared with floor.sh (issue #4: ratio <= 1.15).
#  - cloudimg-kvm.seedjob: the job that stock.pkr.hcl does with the stock qemu
#    builder (cloud-init wait, marker, scrub the build user), done the plugin's
#    way: reset provisioner + metadata post-processor (issue #8: ratio <= 0.9).
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
}

build {
  source "cloudimg-kvm.bench" {
    name    = "floor"
    vm_name = "floor.qcow2"
  }
  source "cloudimg-kvm.bench" {
    name    = "seedjob"
    vm_name = "seedjob.qcow2"
  }

  provisioner "shell" {
    inline = ["echo bench | sudo tee /etc/bench-marker >/dev/null", "sudo sync"]
  }
  provisioner "cloudimg-cloudinit-reset" {
    only = ["cloudimg-kvm.seedjob"]
  }
  post-processor "cloudimg-metadata" {
    only       = ["cloudimg-kvm.seedjob"]
    repository = var.output
    image_name = "bench"
  }
}
