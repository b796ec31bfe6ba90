# N nodes from one image of a cloudimg image repository, on libvirt.
#
# The image is the newest of var.image_name with var.image_labels in the
# repository's index.json (or the one var.image_sha256 pins). Every per-node
# name carries the first 12 hex digits of the image's SHA-256, so a new image
# means new names: each node is then replaced, the new domain created before
# the old one is destroyed (create_before_destroy). Pinning the previous
# image's sha256 rolls back the same way. See README.md.

locals {
  index = jsondecode(file("${var.repository}/index.json"))

  # The images of that name that carry every wanted label, by their
  # position in the index (its entries need not have the same attributes,
  # so they are not mixed in one conditional).
  images = local.index.images
  candidates = [
    for i, e in local.images : i
    if e.name == var.image_name && alltrue([for k, v in var.image_labels : lookup(e.labels, k, null) == v])
  ]
  # The newest, as the index's own "latest": by created (RFC 3339 in UTC,
  # which sorts as text), equal times by the greater path.
  by_age = { for i in local.candidates : "${local.images[i].created} ${local.images[i].path}" => i }
  newest = length(local.candidates) > 0 ? local.by_age[reverse(sort(keys(local.by_age)))[0]] : -1
  pinned = [for i in local.candidates : i if local.images[i].checksums.sha256 == var.image_sha256]
  chosen = var.image_sha256 == "" ? local.newest : (length(local.pinned) > 0 ? local.pinned[0] : -1)
  image  = local.chosen < 0 ? null : local.images[local.chosen]

  sha256 = try(local.image.checksums.sha256, "")
  tag    = substr(local.sha256, 0, 12)
  nodes = [for i in range(var.node_count) : {
    name     = "${var.name}-${i}-${local.tag}"
    hostname = "${var.name}-${i}"
  }]
}

resource "libvirt_pool" "images" {
  name = var.pool_name
  type = "dir"
  target {
    path = var.pool_path
  }
}

# The image, copied into the pool once; the nodes' disks are copy-on-write
# volumes on it.
resource "libvirt_volume" "image" {
  name   = "${var.name}-image-${local.tag}.qcow2"
  pool   = libvirt_pool.images.name
  source = "${var.repository}/${try(local.image.path, "")}"
  format = "qcow2"

  lifecycle {
    create_before_destroy = true
    precondition {
      condition     = local.image != null
      error_message = var.image_sha256 == "" ? "No image named ${jsonencode(var.image_name)} with labels ${jsonencode(var.image_labels)} in ${var.repository}/index.json: check image_name and image_labels against the index." : "No image named ${jsonencode(var.image_name)} with labels ${jsonencode(var.image_labels)} and sha256 ${var.image_sha256} in ${var.repository}/index.json (was it removed, e.g. by keep_last?): pin one the index lists, or set image_sha256 = \"\" for the newest."
    }
  }
}

# Each node's disk: larger than the image, so that cloud-init's growpart
# grows the root file system on the first boot.
resource "libvirt_volume" "disk" {
  count          = var.node_count
  name           = "${local.nodes[count.index].name}.qcow2"
  pool           = libvirt_pool.images.name
  base_volume_id = libvirt_volume.image.id
  size           = var.disk_size_gib * 1024 * 1024 * 1024
  format         = "qcow2"

  lifecycle {
    create_before_destroy = true
  }
}

# Each node's NoCloud seed: its own instance-id (the domain name, so a new
# image is a new instance), hostname, user and key.
resource "libvirt_cloudinit_disk" "seed" {
  count = var.node_count
  name  = "${local.nodes[count.index].name}-seed.iso"
  pool  = libvirt_pool.images.name
  meta_data = yamlencode({
    "instance-id"    = local.nodes[count.index].name
    "local-hostname" = local.nodes[count.index].hostname
  })
  user_data = "#cloud-config\n${yamlencode({
    users = [{
      name                = var.user
      shell               = "/bin/bash"
      sudo                = "ALL=(ALL) NOPASSWD:ALL"
      ssh_authorized_keys = [var.ssh_authorized_key]
    }]
  })}"

  lifecycle {
    create_before_destroy = true
  }
}

resource "libvirt_domain" "node" {
  count       = var.node_count
  name        = local.nodes[count.index].name
  description = "${var.image_name} ${try(local.image.path, "")} sha256:${local.sha256}"
  type        = var.domain_type
  memory      = var.memory_mib
  vcpu        = var.vcpu
  # An IDE CD-ROM: the provider's default machine (pc) has IDE; on q35 a
  # kernel without SATA AHCI (Debian 12's cloud kernel) cannot read it.
  cloudinit = libvirt_cloudinit_disk.seed[count.index].id

  dynamic "cpu" {
    for_each = var.cpu_mode == "" ? [] : [var.cpu_mode]
    content {
      mode = cpu.value
    }
  }

  disk {
    volume_id = libvirt_volume.disk[count.index].id
  }

  dynamic "network_interface" {
    for_each = var.network_name == "" ? [] : [var.network_name]
    content {
      network_name = network_interface.value
      hostname     = local.nodes[count.index].hostname
    }
  }

  console {
    type        = "pty"
    target_type = "serial"
    target_port = "0"
  }

  dynamic "xml" {
    for_each = var.domain_xslt == "" ? [] : [var.domain_xslt]
    content {
      xslt = xml.value
    }
  }

  lifecycle {
    create_before_destroy = true
    # Provider 0.8.3 updates a domain in place when only its disk volume or
    # seed is replaced (the running VM keeps the deleted disk): a new disk
    # or seed replaces the domain.
    replace_triggered_by = [
      libvirt_volume.disk[count.index].id,
      libvirt_cloudinit_disk.seed[count.index].id,
    ]
  }
}
