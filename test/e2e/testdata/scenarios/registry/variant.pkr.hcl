# TestScenarioBasic's registry subtest: a variant built on another "machine"
# (its own Packer cache and working directory; the base's directory is moved
# away meanwhile) from the basic image in the registry, found by the
# cloudimg-repository data source through oci:// and pulled by the builder.
# Both the data source and the builder check the base's signature in the
# registry (verify_key). The variant is recorded by cloudimg-metadata and
# pushed by cloudimg-oci in the same chain.
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "registry_repository" {
  type        = string
  description = "The registry repository the base was pushed to, host:port/path."
}

variable "ca_file" {
  type        = string
  description = "The test registry's CA certificate."
}

variable "output_directory" {
  type = string
}

variable "verify_key" {
  type        = list(string)
  description = "Public keys one of which must have signed the base in the registry."
}

variable "base_token" {
  type        = string
  description = "The marker the base build wrote to /etc/cloudimg-e2e-marker."
}

# Credentials come from DOCKER_CONFIG, as docker/podman/oras login leave them.
data "cloudimg-repository" "base" {
  repository = "oci://${var.registry_repository}"
  image_name = "basic"
  labels     = { scenario = "basic" }
  arch       = "amd64"
  ca_file    = var.ca_file
  verify_key = var.verify_key
}

source "cloudimg-kvm" "variant" {
  iso_url          = data.cloudimg-repository.base.url
  iso_checksum     = data.cloudimg-repository.base.checksum
  ca_file          = var.ca_file
  verify_key       = var.verify_key
  ssh_timeout      = "30m"
  output_directory = var.output_directory
  vm_name          = "variant.qcow2"
  serial_log_file  = "${path.cwd}/variant.serial.log"
}

build {
  sources = ["source.cloudimg-kvm.variant"]

  # The VM runs the base image: its marker is there.
  provisioner "shell" {
    inline = ["test \"$(cat /etc/cloudimg-e2e-marker)\" = '${var.base_token}'"]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processors {
    post-processor "cloudimg-metadata" {
      labels = { scenario = "registry-variant" }
    }
    post-processor "cloudimg-oci" {
      repository = var.registry_repository
      tags       = ["variant"]
      layout     = "artifact"
      ca_file    = var.ca_file
    }
  }
}
