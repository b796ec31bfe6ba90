#!/usr/bin/env bash
# Makes sure the host programs that the end-to-end tests and the demo need are
# installed. As root it installs the missing Debian packages; otherwise it
# prints the exact command to run and fails.
#
# Usage: deps.sh [demo]. Without an argument: everything `make test` needs.
# With "demo": what `make demo` needs (no arm64 emulation, no shellcheck).
set -euo pipefail
profile=${1:-test}
case $profile in
test | demo) ;;
*)
	echo "deps.sh: unknown profile '$profile' (use: deps.sh [demo])" >&2
	exit 2
	;;
esac

# command -> Debian package that provides it
declare -A need=(
	[qemu-system-x86_64]=qemu-system-x86
	[qemu-img]=qemu-utils
	[debootstrap]=debootstrap
	[mkfs.ext4]=e2fsprogs
	[sfdisk]=fdisk
	[mkfs.fat]=dosfstools
	[mcopy]=mtools
	[grub-mkimage]=grub-common
	[ansible-playbook]=ansible-core
	[dpkg-deb]=dpkg
	[ssh]=openssh-client
	[ssh-keygen]=openssh-client
	[sha256sum]=coreutils
	[git]=git
	# make bench: the registry part times oras with GNU time and polls the registry
	[/usr/bin/time]=time
	[curl]=curl
	[isoinfo]=genisoimage
	[genisoimage]=genisoimage
	# libvirt, for the consumer boot with virt-install (test/e2e) and the demo
	[virt-install]=virtinst
	[virsh]=libvirt-daemon-system
	[libvirtd]=libvirt-daemon-system
	[virtlogd]=libvirt-daemon-system
	[unshare]=util-linux
	# Terraform's libvirt provider (example/terraform, its e2e test): its
	# xml { xslt } runs xsltproc, its libvirt_cloudinit_disk runs mkisofs
	[xsltproc]=xsltproc
	[mkisofs]=genisoimage
	# make tools: the provider's build applies its go-libvirt fix
	# (tools/libvirt-provider/build.sh)
	[patch]=patch
)
if [ "$profile" = test ]; then
	# arm64: the test image's build (foreign binaries through binfmt_misc)
	# and the emulated arm64 VMs
	need[qemu-aarch64-static]=qemu-user-static
	need[qemu-system-aarch64]=qemu-system-arm
	# make lint; the reset's library runs under dash, bash and busybox sh
	# in make unit
	need[shellcheck]=shellcheck
	need[busybox]=busybox
	# the OCI registry tests: CNCF Distribution (started by the test with
	# its own loopback config, never the shipped one), skopeo as an
	# independent client, tar to read the containerDisk layer
	need[docker-registry]=docker-registry
	need[skopeo]=skopeo
	need[tar]=tar
fi
# files -> package (no command to look for)
declare -A need_files=(
	[/usr/lib/grub/i386-pc/boot.img]=grub-pc-bin
	[/usr/share/OVMF/OVMF_CODE_4M.fd]=ovmf
	[/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so]=libvirt-daemon-driver-qemu
)
if [ "$profile" = test ]; then
	need_files[/usr/share/AAVMF/AAVMF_CODE.fd]=qemu-efi-aarch64
fi

missing=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for f in "${!need_files[@]}"; do
	[ -e "$f" ] || missing+=("${need_files[$f]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "Missing Debian packages: ${missing[*]}" >&2
	echo "Install them as root, then run make again:" >&2
	echo "  sudo sh -c '$cmd'" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "Missing packages ${missing[*]} and no apt-get: install the equivalents with your package manager." >&2
	exit 1
fi
echo "Installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
