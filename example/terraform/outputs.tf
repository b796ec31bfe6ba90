output "image" {
  description = "The deployed image's index entry: path (in the repository), sha256, name, labels, created, build_id and source_name (what each node's /etc/cloudimg/image.json names)."
  value = {
    path        = try(local.image.path, null)
    sha256      = local.sha256
    name        = try(local.image.name, null)
    labels      = try(local.image.labels, null)
    created     = try(local.image.created, null)
    build_id    = try(local.image.build_id, "")
    source_name = try(local.image.source_name, "")
  }
}

output "nodes" {
  description = "Each node's domain name (also its cloud-init instance-id) and hostname."
  value       = [for i, n in local.nodes : merge(n, { instance_id = n.name, domain_id = libvirt_domain.node[i].id })]
}
