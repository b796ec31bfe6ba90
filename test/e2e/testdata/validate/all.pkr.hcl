# A valid template naming all three components of the plugin.
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
  vm_name          = "test.qcow2"
  cpus             = 2
  memory           = 1024
  disk_size        = "4G"
  hostname         = "validate-test"
  user_data        = <<-EOT
    #cloud-config
    write_files:
      - path: /etc/e2e-validate
        content: "validated\n"
  EOT
}

build {
  sources = ["source.cloudimg-kvm.test"]

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    labels = {
      purpose = "e2e"
    }
  }
}
