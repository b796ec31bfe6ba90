# TestScenarioBasic's chained build: a variant of the basic scenario's image,
# built from it through the cloudimg-repository data source, filed in the same
# repository under the same name and labels with keep_last = 1, so that the
# base is removed once the variant is in.
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
  description = "The basic scenario's image repository."
}

variable "cell" {
  type        = string
  description = "The base image's cell label (debian-12)."
}

variable "image_id" {
  type        = string
  description = "Directory of the variant inside the repository."
}

variable "base_token" {
  type        = string
  description = "The marker the base build wrote to /etc/cloudimg-e2e-marker."
}

variable "keep_last" {
  type        = number
  description = "The post-processor's keep_last (0 keeps every image: the terraform subtest's rollback needs the older one)."
  default     = 1
}

variable "variant_token" {
  type        = string
  description = "Random token written to /etc/cloudimg-e2e-variant."
}

variable "verify_key" {
  type        = list(string)
  default     = []
  description = "Public keys one of which must have signed the base (data source and builder)."
}

variable "key_file" {
  type        = string
  default     = ""
  description = "The key the variant is signed with (the test gives env://…, its password in COSIGN_PASSWORD)."
}

data "cloudimg-repository" "base" {
  repository = var.repository
  image_name = "basic"
  labels     = { scenario = "basic" }
  verify_key = var.verify_key
}

source "cloudimg-kvm" "basic" {
  iso_url          = data.cloudimg-repository.base.url
  iso_checksum     = data.cloudimg-repository.base.checksum
  ssh_timeout      = "30m"
  output_directory = "${var.repository}/${var.image_id}"
  vm_name          = "basic.qcow2"
  serial_log_file  = "${path.cwd}/variant.serial.log"
  verify_key       = var.verify_key
}

build {
  sources = ["source.cloudimg-kvm.basic"]

  # The VM runs the base image: its marker is there.
  provisioner "shell" {
    inline = [
      "test \"$(cat /etc/cloudimg-e2e-marker)\" = '${var.base_token}'",
      "printf '%s\\n' '${var.variant_token}' | sudo -n tee /etc/cloudimg-e2e-variant >/dev/null",
    ]
  }

  # The labels also go into the image's identity (/etc/cloudimg/image.json).
  provisioner "cloudimg-cloudinit-reset" {
    labels = {
      scenario = "basic"
      cell     = var.cell
    }
  }

  post-processor "cloudimg-metadata" {
    repository = var.repository
    labels = {
      scenario = "basic"
      cell     = var.cell
    }
    keep_last = var.keep_last
    key_file  = var.key_file
  }
}
