# Resolves two images from the fixture mirror beside this file, and falls
# back for a third: nothing is fetched from the network and no VM starts. TestPacker (packer_test.go) runs
# it with tools/bin/packer and the plugin built from this checkout; by hand:
#
#   go build -o /tmp/p/packer-plugin-cloudimg . &&
#   PACKER_PLUGIN_PATH=/tmp/p/plugins tools/bin/packer plugins install --path /tmp/p/packer-plugin-cloudimg github.com/packer-cloudimg/cloudimg &&
#   PACKER_PLUGIN_PATH=/tmp/p/plugins tools/bin/packer build datasource/image/testdata/resolve.pkr.hcl

variable "debian_release" {
  type    = string
  default = "bookworm"
}

variable "debian_variant" {
  type    = string
  default = "genericcloud"
}

# A file:// URL of a mirror laid out like cloud.debian.org/images/cloud/.
data "cloudimg-image" "debian" {
  distribution = "debian"
  release      = var.debian_release
  variant      = var.debian_variant
  base_url     = "file://${abspath(path.root)}/mirror/debian"
}

# Another data source's output is unknown to `packer validate`: the image
# data source accepts it there and checks it when it runs.
data "null" "codename" {
  input = "noble"
}

# A plain directory laid out like cloud-images.ubuntu.com/releases/, without
# simplestreams: the newest release-<serial>/SHA256SUMS is read.
data "cloudimg-image" "ubuntu" {
  distribution = "ubuntu"
  release      = data.null.codename.output
  serial       = "latest"
  base_url     = "${path.root}/mirror/ubuntu"
}

# Nothing listens on port 1: the mirror cannot be reached, so the pinned
# fallback is output (what an offline build with a cached image needs).
data "cloudimg-image" "offline" {
  distribution      = "ubuntu"
  release           = "noble"
  base_url          = "http://127.0.0.1:1/releases/"
  timeout           = "20s"
  fallback_url      = "https://cloud-images.ubuntu.com/releases/noble/release-20241004/ubuntu-24.04-server-cloudimg-amd64.img"
  fallback_checksum = "file:https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS"
  fallback_serial   = "20241004"
}

source "null" "resolve" {
  communicator = "none"
}

build {
  sources = ["source.null.resolve"]

  provisioner "shell-local" {
    inline = [
      "echo 'debian.url=${data.cloudimg-image.debian.url}'",
      "echo 'debian.checksum=${data.cloudimg-image.debian.checksum}'",
      "echo 'debian.serial=${data.cloudimg-image.debian.serial}'",
      "echo 'debian.name=${data.cloudimg-image.debian.name}'",
      "echo 'debian.checksum_url=${data.cloudimg-image.debian.checksum_url}'",
      "echo 'ubuntu.url=${data.cloudimg-image.ubuntu.url}'",
      "echo 'ubuntu.checksum=${data.cloudimg-image.ubuntu.checksum}'",
      "echo 'ubuntu.serial=${data.cloudimg-image.ubuntu.serial}'",
      "echo 'ubuntu.name=${data.cloudimg-image.ubuntu.name}'",
      "echo 'ubuntu.checksum_url=${data.cloudimg-image.ubuntu.checksum_url}'",
      "echo 'offline.url=${data.cloudimg-image.offline.url}'",
      "echo 'offline.checksum=${data.cloudimg-image.offline.checksum}'",
      "echo 'offline.serial=${data.cloudimg-image.offline.serial}'",
    ]
  }
}
