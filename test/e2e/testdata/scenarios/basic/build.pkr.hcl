# TestScenarioBasic and TestScenarioDebian13: one image through the whole
# plugin: the builder, a shell provisioner writing a marker and installing a
# probe package, the reset, and
# the metadata post-processor recording the image in a repository.
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
  description = "The test cloud image of the cell (a local qcow2)."
}

variable "cell" {
  type        = string
  description = "The test image's cell (debian-12, debian-13): a label of the image."
}

variable "user_data" {
  type        = string
  default     = ""
  description = "Extra #cloud-config for the build's seed."
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
  description = "Directory of this build's image inside the repository."
}

variable "probe_deb" {
  type        = string
  description = "A .deb the provisioner installs (the SBOM must list it)."
}

variable "marker_token" {
  type        = string
  description = "Random token written to /etc/cloudimg-e2e-marker."
}

variable "key_file" {
  type        = string
  default     = ""
  description = "cosign's private key: the metadata post-processor signs with it (TestScenarioBasic); empty: nothing is signed."
}

variable "key_password" {
  type        = string
  default     = ""
  sensitive   = true
  description = "The key's password (the test passes it as PKR_VAR_key_password)."
}

source "cloudimg-kvm" "basic" {
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout      = "30m"
  output_directory = "${var.repository}/${var.image_id}"
  vm_name          = "basic.qcow2"
  serial_log_file  = "${path.cwd}/basic.serial.log"
  user_data        = var.user_data
}

build {
  sources = ["source.cloudimg-kvm.basic"]

  provisioner "file" {
    source      = var.probe_deb
    destination = "/tmp/cloudimg-e2e-probe.deb"
  }

  provisioner "shell" {
    inline = [
      "printf '%s\\n' '${var.marker_token}' | sudo -n tee /etc/cloudimg-e2e-marker >/dev/null",
      "sudo -n chmod 0644 /etc/cloudimg-e2e-marker",
      "sudo -n dpkg -i /tmp/cloudimg-e2e-probe.deb && rm -f /tmp/cloudimg-e2e-probe.deb",
    ]
  }

  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    labels = {
      scenario = "basic"
      cell     = var.cell
    }
    provenance_parameters = {
      cell = var.cell
    }
    key_file     = var.key_file
    key_password = var.key_password
  }
}
