# Two stages chained on the newest base image (../base): the
# cloudimg-repository data source finds it in the repository, each stage
# adds its own work, and the metadata of each names the base it was built
# from (source.image_name, source.sha256, source.build_id).
#
#   packer init . && packer build .
#
# Run it where the base build ran, so that the repository path is the same.

packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "repository" {
  type        = string
  default     = "image-repository-local"
  description = "The image repository the base build filed the base in."
}

variable "image_id" {
  type        = string
  default     = ""
  description = "Name of the build's folder in the repository; a timestamp when empty."
}

variable "keep_last" {
  type        = number
  default     = 2
  description = "How many images of each stage the repository keeps."
}

# The newest base of Ubuntu 24.04; an http(s) URL of the repository works too.
data "cloudimg-repository" "base" {
  repository = var.repository
  image_name = "base"
  labels     = { os = "ubuntu-24.04" }
}

locals {
  image_id = var.image_id != "" ? var.image_id : formatdate("YYYYMMDDhhmmss", timestamp())
}

source "cloudimg-kvm" "stage" {
  iso_url          = data.cloudimg-repository.base.url
  iso_checksum     = data.cloudimg-repository.base.checksum
  output_directory = "${var.repository}/stages-${local.image_id}"
  disk_size        = "4G"
}

build {
  source "source.cloudimg-kvm.stage" {
    name    = "production"
    vm_name = "production.qcow2"
  }
  source "source.cloudimg-kvm.stage" {
    name    = "development"
    vm_name = "development.qcow2"
  }

  provisioner "shell" {
    inline = [
      # The base's work is there already.
      "test -s /etc/image-base",
      "echo 'stage ${source.name} on ${data.cloudimg-repository.base.path}' | sudo -n tee /etc/image-stage >/dev/null",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    image_name = source.name
    labels = {
      os    = "ubuntu-24.04"
      stage = source.name
    }
    # The newest images of each stage stay (two by default); older ones are
    # removed.
    keep_last = var.keep_last
  }
}
