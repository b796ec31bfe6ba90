# The builder's disk_compression_type is zstd or zlib; xz is not a qcow2 compression type.
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
  iso_url               = var.iso_url
  iso_checksum          = var.iso_checksum
  output_directory      = var.output_directory
  disk_compression      = true
  disk_compression_type = "xz"
}

build {
  sources = ["source.cloudimg-kvm.test"]
}
