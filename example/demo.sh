#!/usr/bin/env bash
# `make demo`: builds the example Kubernetes node image end to end with this
# plugin, offline: the Ubuntu cloud image is replaced by a Debian 12 cloud image
# built locally from Debian's mirrors, and containerd, Kubernetes and Cilium
# are not installed (the guest cannot reach their repositories here), so the
# image is named debian-12-node-* and carries no Kubernetes labels. Then it checks the
# repository's checksums, boots the image with a new cloud-init seed, and (as
# root) starts it as a new libvirt VM the way its users do, with virt-install
# --import --cloud-init, logs in, shows its hostname and cloud-init status, and
# removes the VM again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=example/libvirtd.sh
source "$root/example/libvirtd.sh"
packer=$root/tools/bin/packer
export CHECKPOINT_DISABLE=1
# Plain text when the output goes to a file or a pipe (no ANSI colour codes).
if [ ! -t 1 ]; then export PACKER_NO_COLOR=1 ANSIBLE_NOCOLOR=1; fi
export PACKER_PLUGIN_PATH=$root/.demo/plugins

say() { printf '\n==> %s\n' "$*"; }

name=debian-12-node
say "What the demo builds"
cat <<EOF
example/ubuntu-2404-kubernetes.pkr.hcl as a user would run it, with three
changes so that it runs offline here:
  - the source is a Debian 12 cloud image built from Debian's mirrors, not the
    Ubuntu 24.04 cloud image (no cloud image can be downloaded here);
  - install_packages=false: the playbook configures the node (kernel modules,
    sysctls) but installs neither containerd nor the Kubernetes packages, and
    no Cilium (the guest has no internet);
  - name=$name: the image is $name-development.qcow2, labelled with its
    stage and arch only (no kubernetes_version or cilium_version).
EOF

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
vars=(-var "iso_url=$image" -var "iso_checksum=sha256:$sum" -var install_packages=false -var "name=$name" -var "image_id=$id")
say "packer validate"
"$packer" validate "${vars[@]}" .
say "packer build (development; about 3 minutes under software emulation)"
"$packer" build "${vars[@]}" .

say "Checking the image repository"
(cd image-repository-local && sha256sum -c SHA256SUMS)
built=image-repository-local/$id/$name-development.qcow2
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

say "Starting the image as a new libvirt VM, the way its users do (virt-install --import --cloud-init)"
if [ "$(id -u)" -ne 0 ]; then
	echo "(skipped: creating a VM on qemu:///system needs root)"
	say "Done: $root/example/$built"
	exit 0
fi
virsh() { command virsh -c qemu:///system "$@"; }
vm=cloudimg-demo-$$ vmdir="" lv="" daemons=()
cleanup() {
	set +e
	if [ -n "$vmdir" ]; then
		virsh destroy "$vm" >/dev/null 2>&1
		virsh undefine "$vm" >/dev/null 2>&1
		rm -rf "$vmdir"
	fi
	[ -z "$lv" ] || rm -rf "$lv"
	[ ${#daemons[@]} -eq 0 ] || kill "${daemons[@]}" # only the daemons started here
}
trap cleanup EXIT
virt_type=qemu
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then virt_type=kvm; fi
ensure_libvirtd "$virt_type"
# libvirt-qemu must read the disk: a copy under /var/lib/libvirt/images.
vmdir=$(mktemp -d /var/lib/libvirt/images/cloudimg-demo.XXXXXX) && chmod 711 "$vmdir"
cp "$built" "$vmdir/disk.qcow2"
ssh-keygen -q -t ed25519 -N '' -C cloudimg-demo -f "$vmdir/id_ed25519"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# No libvirt network: a QEMU user-mode NIC reachable only through 127.0.0.1:$port.
# Machine pc (IDE CD-ROM): Debian 12's cloud kernel has no SATA driver for q35's seed CD.
virt-install --connect qemu:///system --name "$vm" --virt-type $virt_type --osinfo linux2022 \
	--machine pc --memory 1024 --vcpus 2 --import --disk "path=$vmdir/disk.qcow2,format=qcow2,bus=virtio" \
	--cloud-init "ssh-key=$vmdir/id_ed25519.pub" --network none \
	--qemu-commandline="-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22 -device virtio-net-pci,netdev=n0,bus=pci.0,addr=0x10" \
	--serial "file,path=$vmdir/serial.log" --graphics none --noautoconsole
# virt-install's ssh-key is its root-ssh-key: the key is root's (it creates no other user).
vm_ssh() {
	ssh -i "$vmdir/id_ed25519" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR root@127.0.0.1 "$@"
}
t0=$SECONDS
until vm_ssh true 2>/dev/null; do
	if [ $((SECONDS - t0)) -gt 900 ]; then
		echo "no SSH login as root within 15 minutes; serial console:" >&2
		tail -n 40 "$vmdir/serial.log" >&2
		exit 1
	fi
	sleep 5
done
echo "logged in as root on 127.0.0.1:$port after $((SECONDS - t0)) s"
# cloud-init restarts sshd once: run again if the connection was cut.
for _ in 1 2 3; do
	vm_ssh 'echo "hostname: $(hostname)"; cloud-init status --wait --long; echo "(cloud-init status exit $?)"' && break
	sleep 5
done

say "Removing the VM (virsh destroy, virsh undefine) and its disk"
cleanup
trap - EXIT
say "Done: $root/example/$built"
