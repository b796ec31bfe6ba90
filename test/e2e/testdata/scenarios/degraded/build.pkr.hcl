# TestScenarioDegraded: the user-data uses a key that cloud-init 25.1
# reports as DEPRECATED (apt_update, replaced by package_update in 22.2;
# false does nothing), so `cloud-init status` exits 2 ("degraded"). With
# cloud_init_degraded = "fail" the build must stop there, before any
# provisioner, with cloud-init's own message on Packer's error line.
# The user-data comes the stock qemu builder's way (cd_label + cd_content,
# with the password login such templates carry): the builder merges it into
# its own seed and says once what it dropped (ssh_pwauth).
packer {
  required_plugins {
    cloudimg = {
      source  = "github.com/packer-cloudimg/cloudimg"
      version = ">= 0.0.1"
    }
  }
}

variable "iso_url" {
  type = string
}

variable "iso_checksum" {
  type = string
}

variable "output_directory" {
  type = string
}

source "cloudimg-kvm" "degraded" {
  iso_url             = var.iso_url
  iso_checksum        = var.iso_checksum
  # Generous: emulated guests on a loaded host can take many minutes to boot.
  ssh_timeout         = "30m"
  output_directory    = var.output_directory
  vm_name             = "degraded.qcow2"
  serial_log_file     = "${path.cwd}/degraded.serial.log"
  cloud_init_degraded = "fail"
  cd_label            = "cidata"
  cd_content = {
    "user-data" = <<-EOT
      #cloud-config
      ssh_pwauth: true
      apt_update: false
    EOT
  }
}

build {
  sources = ["source.cloudimg-kvm.degraded"]

  provisioner "shell" {
    # The marker is computed by the guest's shell, so the test cannot match
    # it in an echo of the command itself.
    inline = ["echo \"e2e-degraded-provisioner-ran-$((6 * 7))\""]
  }
}
