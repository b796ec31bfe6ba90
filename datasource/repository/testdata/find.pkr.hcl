# Reads a repository twice, from its directory and over HTTP, and feeds a
# chained cloudimg-kvm source: nothing builds a VM. TestPacker
# (packer_test.go) makes the repository and serves it, then runs
# `packer validate` (the outputs are unknown there, and the kvm source
# accepts them) and `packer build -only=null.find`, which prints every output.

variable "repository" {
  type = string
}

variable "repository_url" {
  type = string
}

variable "os" {
  type    = string
  default = "debian-12"
}

data "cloudimg-repository" "local" {
  repository = var.repository
  image_name = "base"
  labels     = { os = var.os }
}

# Another data source's output is unknown to `packer validate`.
data "null" "name" {
  input = "base"
}

data "cloudimg-repository" "remote" {
  repository = var.repository_url
  image_name = data.null.name.output
}

# The chained build: validated, never built here.
source "cloudimg-kvm" "variant" {
  iso_url          = data.cloudimg-repository.local.url
  iso_checksum     = data.cloudimg-repository.local.checksum
  output_directory = "${var.repository}/variant"
}

source "null" "find" {
  communicator = "none"
}

build {
  sources = ["source.null.find", "source.cloudimg-kvm.variant"]

  provisioner "shell-local" {
    only = ["null.find"]
    inline = [
      "echo 'local.url=${data.cloudimg-repository.local.url}'",
      "echo 'local.checksum=${data.cloudimg-repository.local.checksum}'",
      "echo 'local.path=${data.cloudimg-repository.local.path}'",
      "echo 'local.labels.os=${data.cloudimg-repository.local.labels.os}'",
      "echo 'local.finished_at=${data.cloudimg-repository.local.finished_at}'",
      "echo 'local.build_id=${data.cloudimg-repository.local.build_id}'",
      "echo 'local.firmware=${data.cloudimg-repository.local.firmware}'",
      "echo 'local.metadata_url=${data.cloudimg-repository.local.metadata_url}'",
      "echo 'local.source_url=${data.cloudimg-repository.local.source_url}'",
      "echo 'local.source_checksum=${data.cloudimg-repository.local.source_checksum}'",
      "echo 'local.os=${data.cloudimg-repository.local.os_id} ${data.cloudimg-repository.local.os_version_id} ${data.cloudimg-repository.local.os_name}'",
      "echo 'remote.url=${data.cloudimg-repository.remote.url}'",
      "echo 'remote.metadata_url=${data.cloudimg-repository.remote.metadata_url}'",
      "echo 'remote.build_id=${data.cloudimg-repository.remote.build_id}'",
    ]
  }
}
