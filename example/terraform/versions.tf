# Runs with Terraform (>= 1.4: replace_triggered_by, terraform_data) and
# OpenTofu (tested with OpenTofu 1.10.10). The provider's source address is
# spelled out in full so that both find it in the same local mirror
# (`init -plugin-dir=DIR`) or registry.
terraform {
  required_version = ">= 1.4"
  required_providers {
    libvirt = {
      source  = "registry.terraform.io/dmacvicar/libvirt"
      version = "0.8.3"
    }
  }
}

provider "libvirt" {
  uri = var.libvirt_uri
}
