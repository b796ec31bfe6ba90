# The stock `qemu` builder's side of `make bench`: the classic template that
# cloudimg-kvm replaces (issue #8). A hand-written cidata seed with a password
# user (needs xorriso/genisoimage on the host), boot_wait, a shell provisioner
# waiting for cloud-init, the same marker as bench.pkr.hcl, a sed scrub of the
# build user, and the builder's default halt (QEMU is stopped, no ACPI
# shutdown; hence the sync). The accelerator is set as a user here must:
# /dev/kvm exists on these machines but cannot run a guest.
# qemu.realsize is the stock side of the real-size job (issue #17): the same
# template with an 8 GiB disk, the data disk of realsize-data.sh attached,
# realsize.sh's provisioning and the builder's compression (zlib, its only
# choice).
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
variable "data" {
  type    = string
  default = ""
}
variable "layers" {
  type    = string
  default = "3"
}

source "qemu" "stock" {
  iso_url          = var.image
  iso_checksum     = var.checksum
  disk_image       = true
  format           = "qcow2"
  output_directory = var.output
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
  source "qemu.stock" {
    name    = "stock"
    vm_name = "stock.qcow2"
  }
  source "qemu.stock" {
    name             = "realsize"
    vm_name          = "realsize.qcow2"
    disk_size        = "8G"
    disk_compression = true
    # -blockdev and -device: a -drive in qemuargs would replace the stock
    # builder's own drives (its -device list is replaced too, but it puts
    # the NIC back). The last PCI slot, so that SeaBIOS finds the boot disk
    # first (it boots only the first hard disk it finds).
    qemuargs = [
      ["-blockdev", "driver=raw,node-name=benchdata,read-only=on,file.driver=file,file.filename=${var.data}"],
      ["-device", "virtio-blk-pci,drive=benchdata,addr=0x1e"],
    ]
  }

  provisioner "shell" {
    inline           = ["cloud-init status --wait"]
    valid_exit_codes = [0, 2]
  }
  provisioner "shell" {
    inline = ["echo bench | sudo tee /etc/bench-marker >/dev/null", "sudo sync"]
  }
  provisioner "shell" {
    only             = ["qemu.realsize"]
    script           = "realsize.sh"
    environment_vars = ["BENCH_LAYERS=${var.layers}"]
    execute_command  = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
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
