# TestScenarioImmutableNode: two images from ONE source, built in parallel by
# a dynamic source block, provisioned by Ansible with per-source variable
# files: a local .deb whose postinst creates a system user and a
# dpkg-statoverride (the offline stand-in for chrony's _chrony), then the
# reset, then both images recorded in one repository.
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.0.3"
    }
  }
}

variable "iso_url" {
  type        = string
  description = "The Debian 12 test cloud image (a local qcow2)."
}

variable "iso_checksum" {
  type        = string
  description = "sha256:<hex> of iso_url."
}

variable "repository" {
  type        = string
  description = "Image repository directory (index.json, SHA256SUMS)."
}

variable "image_id" {
  type        = string
  description = "Directory of this build's images inside the repository."
}

variable "deb_path" {
  type        = string
  description = "The e2ed .deb that the playbook installs."
}

variable "stages" {
  type    = list(string)
  default = ["production", "development"]
}

source "cloudimg-kvm" "node" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = "${var.repository}/${var.image_id}"
}

build {
  name = "node"

  dynamic "source" {
    for_each = var.stages
    labels   = ["cloudimg-kvm.node"]
    content {
      name            = source.value
      vm_name         = "node-${source.value}.qcow2"
      serial_log_file = "${path.cwd}/${source.value}.serial.log"
    }
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/playbook.yml"
    use_proxy     = false
    extra_arguments = [
      "--extra-vars", "@${path.root}/var-${source.name}.yaml",
      "--extra-vars", "deb_path=${var.deb_path}",
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=True"]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    build_name = "node"
    # Explicit: Packer 1.11.2 tells plugins the name of the top-level source
    # block ("node") even for build-level sources renamed with `name`, so the
    # post-processor's default name would be "node" for both images.
    image_name = source.name
    labels = {
      stage = source.name
    }
  }
}
