# The base of a chained build: Ubuntu 24.04 with the work every stage shares
# (here a small SSH hardening and a marker; in real life your hardening and
# common roles), reset so that it boots as a first boot, and filed in the
# image repository as "base". The stages (../stages) are built from it.
#
#   packer init . && packer build .
#
# See ../README.md; `make demo-chained` builds it offline by setting iso_url and
# iso_checksum to a locally built Debian 12 image (a cloud image too).

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
  description = "The image repository shared with the stages (relative to where Packer runs)."
}

variable "image_id" {
  type        = string
  default     = ""
  description = "Name of the build's folder in the repository; a timestamp when empty."
}

variable "iso_url" {
  type        = string
  default     = ""
  description = "Build from this image instead of the one cloudimg-image resolves (a local copy, a mirror)."
}

variable "iso_checksum" {
  type        = string
  default     = ""
  description = "The checksum of iso_url: sha256:<hex>."
}

data "cloudimg-image" "ubuntu" {
  distribution = "ubuntu"
  release      = "noble"
  # When cloud-images.ubuntu.com cannot be reached (offline, or iso_url is
  # set): the image pinned last, with its literal checksum.
  fallback_url      = "https://cloud-images.ubuntu.com/noble/20241004/noble-server-cloudimg-amd64.img"
  fallback_checksum = "sha256:fad101d50b06b26590cf30542349f9e9d3041ad7929e3bc3531c81ec27f2c788"
  fallback_serial   = "20241004"
}

locals {
  iso_url      = var.iso_url != "" ? var.iso_url : data.cloudimg-image.ubuntu.url
  iso_checksum = var.iso_url != "" ? var.iso_checksum : data.cloudimg-image.ubuntu.checksum
  image_id     = var.image_id != "" ? var.image_id : formatdate("YYYYMMDDhhmmss", timestamp())
}

source "cloudimg-kvm" "base" {
  iso_url          = local.iso_url
  iso_checksum     = local.iso_checksum
  output_directory = "${var.repository}/base-${local.image_id}"
  vm_name          = "base.qcow2"
  disk_size        = "4G"
}

build {
  sources = ["source.cloudimg-kvm.base"]

  provisioner "shell" {
    inline = [
      "printf 'PasswordAuthentication no\\nPermitRootLogin prohibit-password\\n' | sudo -n tee /etc/ssh/sshd_config.d/50-base.conf >/dev/null",
      "echo 'base ${local.image_id}' | sudo -n tee /etc/image-base >/dev/null",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    image_name = "base"
    labels     = { os = "ubuntu-24.04" }
    # The stages name the base they came from in their metadata; older bases
    # beyond the newest three are removed.
    keep_last = 3
  }
}
