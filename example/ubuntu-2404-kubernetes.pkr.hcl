# A Kubernetes node image from the Ubuntu 24.04 cloud image: Ansible installs
# and configures the node, the reset provisioner makes the image boot as a new
# cloud-init instance, and the metadata post-processor files it in a local
# image repository. Build it with:
#
#   packer init .
#   packer build .                              # development only
#   packer build -var build_production=true .   # production and development
#
# `make demo` builds it offline on a locally built Debian 12 test image by
# setting iso_url, iso_checksum and install_packages.

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

variable "image_id" {
  type        = string
  default     = ""
  description = "Name of the image's folder in the repository; a timestamp when empty."
}

variable "build_production" {
  type        = bool
  default     = false
  description = "Also build the production image (development is always built)."
}

variable "ubuntu_serial" {
  type        = string
  default     = "current"
  description = "The Ubuntu 24.04 cloud image serial: current (the newest) or one such as 20241004 to pin it."
}

variable "iso_url" {
  type        = string
  default     = ""
  description = "Build from this image instead of the one the cloudimg-image data source resolves (a local copy, a mirror)."
}

variable "iso_checksum" {
  type        = string
  default     = ""
  description = "The checksum of iso_url: sha256:<hex>, or file:<URL of a SUMS file>."
}

variable "install_packages" {
  type        = bool
  default     = true
  description = "Install containerd and the Kubernetes packages (needs the internet in the guest)."
}

variable "repository" {
  type    = string
  default = "image-repository-local"
}

# Resolves the Ubuntu 24.04 server cloud image to a dated, immutable URL and its
# checksum from Ubuntu's published index. The metadata post-processor records
# that URL, so every image in the repository names the serial it came from.
data "cloudimg-image" "ubuntu" {
  distribution = "ubuntu"
  release      = "noble"
  serial       = var.ubuntu_serial
  # When cloud-images.ubuntu.com cannot be reached: the image pinned last,
  # with its literal checksum, so that an offline build finds it in Packer's
  # download cache. Update all three to the outputs of an online run.
  fallback_url      = "https://cloud-images.ubuntu.com/noble/20241004/noble-server-cloudimg-amd64.img"
  fallback_checksum = "sha256:fad101d50b06b26590cf30542349f9e9d3041ad7929e3bc3531c81ec27f2c788"
  fallback_serial   = "20241004"
}

locals {
  iso_url      = var.iso_url != "" ? var.iso_url : data.cloudimg-image.ubuntu.url
  iso_checksum = var.iso_url != "" ? var.iso_checksum : data.cloudimg-image.ubuntu.checksum
  image_id = var.image_id != "" ? var.image_id : formatdate("YYYYMMDDhhmmss", timestamp())
  stages   = var.build_production ? ["production", "development"] : ["development"]
  # The Ansible variable files also label the images in the repository.
  stage_vars = { for s in ["production", "development"] : s => yamldecode(file("${path.root}/ansible-provisioner/var-${s}.yaml")) }
}

source "cloudimg-kvm" "node" {
  iso_url          = local.iso_url
  iso_checksum     = local.iso_checksum
  output_directory = "${var.repository}/${local.image_id}"
  disk_size        = "10G"
  cpus             = 2
  memory           = 2048
}

build {
  dynamic "source" {
    for_each = local.stages
    labels   = ["cloudimg-kvm.node"]
    content {
      name    = source.value
      vm_name = "ubuntu-2404-kubernetes-${source.value}.qcow2"
    }
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/ansible-provisioner/kubernetes-node.yaml"
    # Ansible connects straight to the guest with the builder's ephemeral key:
    # the plugin's SSH proxy only offers ssh-rsa, which current OpenSSH refuses.
    use_proxy = false
    extra_arguments = [
      "--extra-vars", "@${path.root}/ansible-provisioner/var-${source.name}.yaml",
      "--extra-vars", "install_packages=${var.install_packages}",
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
  }

  # Last: removes the build user and cloud-init's instance state. No cleanup
  # tasks are needed in the playbook.
  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    # One name per stage: the index's "latest" then points to the newest of each.
    image_name = "ubuntu-2404-kubernetes-${source.name}"
    labels = {
      stage              = source.name
      kubernetes_version = local.stage_vars[source.name].kubernetes_version
      cilium_version     = local.stage_vars[source.name].cilium_version
    }
  }
}
