# The stock `qemu` builder's side of `make bench`: the classic template that
# cloudimg-kvm replaces (issue #8). A hand-written cidata seed with a password
# user (needs xorriso/genisoimage on the host), boot_wait, a shell provisioner
# waiting for cloud-init, the same marker as bench.pkr.hcl, a sed scrub of the
# build user, and the builder's default halt (QEMU is stopped, no ACPI
# shutdown; hence the sync). The accelerator is set as a user here must:
# /dev/kvm exists on these machines but cannot run a guest.
packer {
  required_plugins {
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.0.9"
    }
  }
}

variable "image" { type = string }
variable "checksum" { type = string }
variable "output" { type = string }
variable "accelerator" { type = string }

source "qemu" "stock" {
  iso_url          = var.image
  iso_checksum     = var.checksum
  disk_image       = true
  format           = "qcow2"
  output_directory = var.output
  vm_name          = "stock.qcow2"
  accelerator      = var.accelerator
  cpus             = 2
  memory           = 1024
  headless         = true
  cd_label         = "cidata"
  cd_content = {
    "meta-data" = "instance-id: stock\nlocal-hostname: stock\n"
    "user-data" = <<-EOT
      #cloud-config
      users:
        - name: packer
          plain_text_passwd: packer
          lock_passwd: false
          sudo: ALL=(ALL) NOPASSWD:ALL
          shell: /bin/bash
      ssh_pwauth: true
    EOT
  }
  ssh_username = "packer"
  ssh_password = "packer"
  ssh_timeout  = "20m"
}

build {
  sources = ["source.qemu.stock"]

  provisioner "shell" {
    inline           = ["cloud-init status --wait"]
    valid_exit_codes = [0, 2]
  }
  provisioner "shell" {
    inline = ["echo bench | sudo tee /etc/bench-marker >/dev/null", "sudo sync"]
  }
  provisioner "shell" {
    skip_clean      = true
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    inline = [
      "cloud-init clean --logs",
      "truncate -s 0 /etc/machine-id",
      "rm -f /etc/ssh/ssh_host_*",
      "sed -i '/^packer:/d' /etc/passwd /etc/shadow /etc/group /etc/gshadow /etc/subuid /etc/subgid",
      "sed -i 's/\\(,\\|:\\)packer\\(,\\|$\\)/\\1/' /etc/group /etc/gshadow",
      "rm -rf /home/packer /etc/sudoers.d/90-cloud-init-users",
      "sync",
    ]
  }
}
