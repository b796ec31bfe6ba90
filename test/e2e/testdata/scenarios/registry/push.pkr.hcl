# TestScenarioBasic's registry subtest: a push-only run. Packer's null
# builder does nothing; cloudimg-oci pushes the images that the given
# cloudimg-metadata documents describe, with their SBOM and provenance.
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
  description = "Registry repository, host:port/path."
}

variable "metadata_files" {
  type        = list(string)
  description = "The <image>.metadata.json documents of the images to push."
}

variable "tags" {
  type    = list(string)
  default = []
}

variable "layout" {
  type    = string
  default = "containerdisk"
}

variable "ca_file" {
  type        = string
  description = "The test registry's CA certificate."
}

variable "username" {
  type    = string
  default = ""
}

variable "password" {
  type      = string
  default   = ""
  sensitive = true
}

variable "key_file" {
  type    = string
  default = ""
}

variable "key_password" {
  type      = string
  default   = ""
  sensitive = true
}

variable "plain_http" {
  type    = bool
  default = false
}

variable "keep_last" {
  type    = number
  default = 0
}

source "null" "push" {
  communicator = "none"
}

build {
  sources = ["source.null.push"]

  post-processor "cloudimg-oci" {
    repository     = var.repository
    tags           = var.tags
    layout         = var.layout
    metadata_files = var.metadata_files
    ca_file        = var.ca_file
    username       = var.username
    password       = var.password
    keep_last      = var.keep_last
    plain_http     = var.plain_http
    key_file       = var.key_file
    key_password   = var.key_password
  }
}
