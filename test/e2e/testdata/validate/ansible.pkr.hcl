# The Ansible provisioner plugin is installed next to this plugin and takes
# the builder's connection directly (its SSH proxy offers only ssh-rsa, which
# Debian 12's OpenSSH refuses).
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
  description = "A local file standing in for the source cloud image."
}

variable "iso_checksum" {
  type = string
}

variable "output_directory" {
  type = string
}

variable "playbook_file" {
  type = string
}

source "cloudimg-kvm" "test" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  output_directory = var.output_directory
}

build {
  sources = ["source.cloudimg-kvm.test"]

  provisioner "ansible" {
    playbook_file = var.playbook_file
    use_proxy     = false
  }

  provisioner "cloudimg-cloudinit-reset" {}
}
