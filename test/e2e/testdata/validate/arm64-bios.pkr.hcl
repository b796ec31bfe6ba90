# arm64 boots UEFI only: firmware = "bios" is rejected by name.
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

variable "iso_checksum" {
  type = string
}

variable "output_directory" {
  type = string
}

source "cloudimg-kvm" "test" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  output_directory = var.output_directory
  arch             = "arm64"
  firmware         = "bios"
}

build {
  sources = ["source.cloudimg-kvm.test"]
}
