# A Kubernetes node image from the Ubuntu 24.04 cloud image: Ansible installs
# and configures the node, the reset provisioner makes the image boot as a new
# cloud-init instance, and the metadata post-processor files it in a local
# image repository. Build it with:
#
#   packer init .
#   packer build .                              # development only
#   packer build -var build_production=true .   # production and development
#   packer build -var 'arches=["amd64","arm64"]' .  # also the arm64 node image
#
# arm64 is built with qemu-system-aarch64 (packages qemu-system-arm and
# qemu-efi-aarch64): with KVM on an arm64 host, emulated (many times slower)
# on an x86 one; see the arm64 section of the cloudimg-kvm docs.
#
# `make demo` builds it offline on a locally built Debian 12 test image by
# setting iso_url, iso_checksum, install_packages = false and name (so that
# what it builds is named and labelled for what it is: see example/README.md).

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

variable "arches" {
  type        = list(string)
  default     = ["amd64"]
  description = "Architectures to build the node image for: amd64, arm64 or both."
}

variable "iso_url" {
  type        = string
  default     = ""
  description = "Build the amd64 image from this image instead of the one the cloudimg-image data source resolves (a local copy, a mirror)."
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

variable "name" {
  type        = string
  default     = "ubuntu-2404-kubernetes"
  description = "The images' name: <name>-<stage> (file <name>-<stage>.qcow2), with -arm64 for arm64. Change it with iso_url when the image is not Ubuntu 24.04."
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

# The same release for arm64. The data source's arch chooses the image only:
# the source's own arch (below) decides the machine that boots it.
data "cloudimg-image" "ubuntu_arm64" {
  distribution = "ubuntu"
  release      = "noble"
  arch         = "arm64"
  serial       = var.ubuntu_serial
  # Offline: the same dated serial, checked against its SHA256SUMS when built.
  fallback_url      = "https://cloud-images.ubuntu.com/releases/noble/release-20241004/ubuntu-24.04-server-cloudimg-arm64.img"
  fallback_checksum = "file:https://cloud-images.ubuntu.com/releases/noble/release-20241004/SHA256SUMS"
  fallback_serial   = "20241004"
}

locals {
  images = {
    amd64 = {
      url      = var.iso_url != "" ? var.iso_url : data.cloudimg-image.ubuntu.url
      checksum = var.iso_url != "" ? var.iso_checksum : data.cloudimg-image.ubuntu.checksum
    }
    arm64 = {
      url      = data.cloudimg-image.ubuntu_arm64.url
      checksum = data.cloudimg-image.ubuntu_arm64.checksum
    }
  }
  image_id = var.image_id != "" ? var.image_id : formatdate("YYYYMMDDhhmmss", timestamp())
  stages   = var.build_production ? ["production", "development"] : ["development"]
  # One build per stage and architecture, named <stage> for amd64 and
  # <stage>-arm64 for arm64.
  builds = { for p in setproduct(local.stages, var.arches) :
    (p[1] == "amd64" ? p[0] : "${p[0]}-${p[1]}") => { stage = p[0], arch = p[1] }
  }
  # The Ansible variable files also label the images in the repository.
  stage_vars = { for s in ["production", "development"] : s => yamldecode(file("${path.root}/ansible-provisioner/var-${s}.yaml")) }
}

source "cloudimg-kvm" "node" {
  output_directory = "${var.repository}/${local.image_id}"
  disk_size        = "10G"
  cpus             = 2
  memory           = 2048
}

build {
  dynamic "source" {
    for_each = local.builds
    labels   = ["cloudimg-kvm.node"]
    content {
      name         = source.key
      vm_name      = "${var.name}-${source.key}.qcow2"
      arch         = source.value.arch
      iso_url      = local.images[source.value.arch].url
      iso_checksum = local.images[source.value.arch].checksum
    }
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/ansible-provisioner/kubernetes-node.yaml"
    # Ansible connects straight to the guest with the builder's ephemeral key:
    # the plugin's SSH proxy only offers ssh-rsa, which current OpenSSH refuses.
    use_proxy = false
    extra_arguments = [
      "--extra-vars", "@${path.root}/ansible-provisioner/var-${local.builds[source.name].stage}.yaml",
      "--extra-vars", "install_packages=${var.install_packages}",
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
  }

  # Last: removes the build user and cloud-init's instance state. No cleanup
  # tasks are needed in the playbook.
  provisioner "cloudimg-cloudinit-reset" {}

  post-processor "cloudimg-metadata" {
    repository = var.repository
    # One name per stage and architecture: the index's "latest" then points
    # to the newest of each.
    image_name = "${var.name}-${source.name}"
    # The Kubernetes and Cilium versions only when they were installed.
    labels = merge({
      stage = local.builds[source.name].stage
      arch  = local.builds[source.name].arch
      }, var.install_packages ? {
      kubernetes_version = local.stage_vars[local.builds[source.name].stage].kubernetes_version
      cilium_version     = local.stage_vars[local.builds[source.name].stage].cilium_version
    } : {})
  }
}
