# The cloudimg-kvm side of `make bench`.
#  - cloudimg-kvm.floor: the same provisioning as floor.sh (no reset, no
#    metadata), compared with floor.sh (issue #4: ratio <= 1.15).
#  - cloudimg-kvm.seedjob: the job that stock.pkr.hcl does with the stock qemu
#    builder (cloud-init wait, marker, scrub the build user), done the plugin's
#    way: reset provisioner + metadata post-processor (issue #8: ratio <= 0.9).
#  - cloudimg-kvm.realsize: the seed job at a node image's size (issue #17),
#    against stock.pkr.hcl's qemu.realsize: an 8 GiB disk, the data disk of
#    realsize-data.sh attached, realsize.sh's provisioning, compressed output
#    (disk_compression_type's default, zstd).
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "image" { type = string }
variable "checksum" { type = string }
variable "output" { type = string }
variable "data" {
  type    = string
  default = ""
}
variable "layers" {
  type    = string
  default = "3"
}

source "cloudimg-kvm" "bench" {
  iso_url          = var.image
  iso_checksum     = var.checksum
  output_directory = var.output
}

build {
  source "cloudimg-kvm.bench" {
    name    = "floor"
    vm_name = "floor.qcow2"
  }
  source "cloudimg-kvm.bench" {
    name    = "seedjob"
    vm_name = "seedjob.qcow2"
  }
  source "cloudimg-kvm.bench" {
    name             = "realsize"
    vm_name          = "realsize.qcow2"
    disk_size        = "8G"
    disk_compression = true
    # The same attachment as the stock side's.
    qemuargs = [
      ["-blockdev", "driver=raw,node-name=benchdata,read-only=on,file.driver=file,file.filename=${var.data}"],
      ["-device", "virtio-blk-pci,drive=benchdata,addr=0x1e"],
    ]
  }

  provisioner "shell" {
    inline = ["echo bench | sudo tee /etc/bench-marker >/dev/null", "sudo sync"]
  }
  provisioner "shell" {
    only             = ["cloudimg-kvm.realsize"]
    script           = "realsize.sh"
    environment_vars = ["BENCH_LAYERS=${var.layers}"]
    execute_command  = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
  }
  provisioner "cloudimg-cloudinit-reset" {
    only = ["cloudimg-kvm.seedjob", "cloudimg-kvm.realsize"]
  }
  post-processor "cloudimg-metadata" {
    only       = ["cloudimg-kvm.seedjob", "cloudimg-kvm.realsize"]
    repository = var.output
    image_name = "bench"
  }
}
