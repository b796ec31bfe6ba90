variable "libvirt_uri" {
  type        = string
  description = "The libvirt connection (qemu:///system)."
  default     = "qemu:///system"
}

variable "repository" {
  type        = string
  description = "The image repository directory: where the cloudimg-metadata post-processor writes index.json (its `repository` option)."
}

variable "image_name" {
  type        = string
  description = "The image name to deploy (the index's `name`: the post-processor's image_name, by default the Packer source name)."
}

variable "image_labels" {
  type        = map(string)
  description = "Labels the image must have (every one, with the same value); others may be there too."
  default     = {}
}

variable "image_sha256" {
  type        = string
  description = "Pin one image of that name and labels by its SHA-256 (the index's checksums.sha256), e.g. to roll back. Empty: the newest."
  default     = ""
  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.image_sha256))
    error_message = "The image_sha256 must be 64 lower-case hex digits, or empty for the newest image."
  }
}

variable "node_count" {
  type        = number
  description = "How many nodes."
  default     = 2
}

variable "name" {
  type        = string
  description = "Prefix of every name: hostnames are <name>-<i>; domains and volumes <name>-<i>-<first 12 hex digits of the image's sha256>."
  default     = "node"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.name))
    error_message = "The name must be a lower-case host name prefix: a letter, then letters, digits and dashes (41 at most)."
  }
}

variable "pool_name" {
  type        = string
  description = "The libvirt storage pool this module creates (type dir) for the image and the nodes' volumes."
  default     = "cloudimg"
}

variable "pool_path" {
  type        = string
  description = "Directory of that pool; libvirt-qemu must be able to reach it (e.g. below /var/lib/libvirt/images)."
  default     = "/var/lib/libvirt/images/cloudimg"
}

variable "disk_size_gib" {
  type        = number
  description = "Each node's disk, in GiB; larger than the image's virtual size: cloud-init's growpart grows the root file system on the first boot."
  default     = 10
}

variable "memory_mib" {
  type        = number
  description = "Memory of each node in MiB."
  default     = 1024
}

variable "vcpu" {
  type        = number
  description = "vCPUs of each node."
  default     = 2
}

variable "domain_type" {
  type        = string
  description = "libvirt domain type: kvm, or qemu (software emulation, where there is no usable KVM)."
  default     = "kvm"
}

variable "cpu_mode" {
  type        = string
  description = "The domain's CPU mode (host-passthrough with KVM); empty leaves it to libvirt (what a qemu domain needs)."
  default     = "host-passthrough"
}

variable "network_name" {
  type        = string
  description = "The libvirt network the nodes join (e.g. default); empty: no libvirt network interface (add one through domain_xslt)."
  default     = "default"
}

variable "user" {
  type        = string
  description = "The user the seed creates on each node, with passwordless sudo."
  default     = "ops"
}

variable "ssh_authorized_key" {
  type        = string
  description = "The public key (one authorized_keys line) that logs in as that user."
}

variable "domain_xslt" {
  type        = string
  description = "An XSLT stylesheet applied to each domain's XML before libvirt defines it (the provider's xml { xslt }; runs the xsltproc binary); empty for none."
  default     = ""
}
