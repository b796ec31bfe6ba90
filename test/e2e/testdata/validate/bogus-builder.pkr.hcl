# The builder has an option it does not know: bogus_option.
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

variable "repository" {
  type = string
}

source "cloudimg-kvm" "test" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  output_directory = var.output_directory
  bogus_option     = true
}

build {
  sources = ["source.cloudimg-kvm.test"]

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
  }
}
