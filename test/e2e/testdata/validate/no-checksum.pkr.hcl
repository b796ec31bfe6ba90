# The builder has no iso_checksum (the source image must be verified).
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
  description = "A local file standing in for the source cloud image."
}

variable "output_directory" {
  type = string
}

source "cloudimg-kvm" "test" {
  iso_url          = var.iso_url
  output_directory = var.output_directory
}

build {
  sources = ["source.cloudimg-kvm.test"]
}
