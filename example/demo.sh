#!/usr/bin/env bash
# `make demo`: builds the example Kubernetes node image end to end with this
# plugin, offline: the Ubuntu cloud image is replaced by a Debian 12 cloud image
# built locally from Debian's mirrors, and the Kubernetes packages are not
# installed (the guest cannot reach their repository here). Then it checks the
# repository's checksums and boots the image with a new cloud-init seed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packer=$root/tools/bin/packer
export CHECKPOINT_DISABLE=1
export PACKER_PLUGIN_PATH=$root/.demo/plugins

say() { printf '\n==> %s\n' "$*"; }

say "Test cloud image (built once, then cached)"
image=$("$root/test/e2e/image/build.sh" | tail -n 1)
sum=$(sha256sum "$image" | cut -d ' ' -f 1)
echo "$image sha256:$sum"

say "Installing the plugins into $PACKER_PLUGIN_PATH"
rm -rf "$PACKER_PLUGIN_PATH"
"$packer" plugins install --path "$root/packer-plugin-cloudimg" github.com/packer-cloudimg/cloudimg
"$packer" plugins install --path "$root/tools/bin/packer-plugin-ansible" github.com/hashicorp/ansible

cd "$root/example"
id=demo-$(date -u +%Y%m%d%H%M%S)
vars=(-var "iso_url=$image" -var "iso_checksum=sha256:$sum" -var install_packages=false -var "image_id=$id")
say "packer validate"
"$packer" validate "${vars[@]}" .
say "packer build (development; about 3 minutes under software emulation)"
"$packer" build "${vars[@]}" .

say "Checking the image repository"
(cd image-repository-local && sha256sum -c SHA256SUMS)
built=image-repository-local/$id/ubuntu-2404-kubernetes-development.qcow2
echo "metadata: $built.metadata.json"
python3 - "$built.metadata.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
i, g = m["image"], m.get("guest", {})
print(f"  image     {i['path']} ({i['format']}, {i['size_bytes']} bytes, virtual {i['virtual_size_bytes']})")
print(f"  sha256    {i['checksums']['sha256']}")
print(f"  labels    {m.get('labels')}")
print(f"  guest     {g.get('os_release', {}).get('PRETTY_NAME')}, kernel {g.get('kernel')}, cloud-init {g.get('cloud_init_version')}, {len(g.get('packages', []))} packages")
print(f"  reset     user {g.get('reset', {}).get('user')}: " + ", ".join(c["name"] for c in g.get("reset", {}).get("checks", []) if c["ok"]) + " ok")
PY

say "Booting the image with a new seed (a first boot for cloud-init)"
"$root/test/e2e/image/smoke.sh" "$built"
say "Done: $root/example/$built"
