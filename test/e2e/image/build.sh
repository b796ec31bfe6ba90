#!/usr/bin/env bash
# Build a Debian cloud image in qcow2, bootable by BIOS and by UEFI (an EFI
# system partition with GRUB at the removable-media path, as OVMF boots it
# without NVRAM entries), that behaves like Debian's official "genericcloud"
# image: cloud-init (NoCloud seed ISO labelled "cidata" works), openssh-server,
# sudo, growpart, serial console on ttyS0. The image is left "unbooted": empty
# machine-id, no SSH host keys, no /var/lib/cloud, no apt lists.
#
# One recipe, one image per cell (a distribution release and its network stack):
#   debian-12  bookworm, ifupdown + dhclient (ENI), cloud-init 22.4: the old
#              network layout and the old cloud-init
#   debian-13  trixie, netplan + systemd-networkd + systemd-resolved, cloud-init
#              25.1 with its shipped datasource detection (ds-identify), empty
#              /etc/hostname: the layout of Debian's own genericcloud images
#              since bookworm and of Ubuntu 24.04
#   debian-13-arm64  the debian-13 recipe for arm64 (aarch64): Debian's arm64
#              packages (debootstrap's second stage and the chroot steps run
#              through qemu-user-static and binfmt_misc on other hosts), a GPT
#              disk with an EFI system partition (GRUB arm64-efi at
#              EFI/BOOT/BOOTAA64.EFI) and an ext4 root, console on ttyAMA0;
#              UEFI only (arm64 has no BIOS)
#
# Usage:
#   test/e2e/image/build.sh [CELL] [OUTPUT.qcow2]      (CELL defaults to debian-12)
#
# Without OUTPUT the image goes to a cache keyed by a hash of this recipe and the cell:
#   ${CLOUDIMG_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/packer-plugin-cloudimg}/CELL-cloudimg-<hash>.qcow2
# and an existing cached image is reused without any work. An explicit OUTPUT
# is always (re)built. The image path is the LAST line on stdout, everything
# else goes to stderr, so callers can do: img=$(test/e2e/image/build.sh debian-13)
#
# Environment:
#   CLOUDIMG_TEST_CACHE     cache directory (see above)
#   DEBIAN_MIRROR           Debian mirror used for the build (default: the first
#                           .../debian URI in this host's apt sources, else
#                           http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  same for debian-security
#   VERBOSE=1               stream the tools' output to stderr instead of a log
#
# Needs root. It mounts nothing but /proc inside the chroot: the filesystems
# are written straight into the disk file (mkfs.ext4 -d, mkfs.fat + mtools)
# and GRUB is installed by hand (BIOS: boot.img into the MBR, core.img into
# the gap before the first partition; UEFI: EFI/BOOT/BOOTX64.EFI), because grub-install and partition/loop mounts need kernel features that
# build hosts (containers, sandboxed VMs) often lack.
set -euo pipefail
# The whole script is one { ... } group, so bash parses it completely before
# running it: editing the file while it runs cannot derail a run.
{

# ---------------------------------------------------------------- settings --
CELL=debian-12
if [[ $# -gt 0 && $1 != *.qcow2 && $1 != */* ]]; then
  CELL=$1
  shift
fi
case $CELL in
debian-12)
  SUITE=bookworm
  VERSION_NAME="Debian GNU/Linux 12"
  # ifupdown + dhclient: cloud-init writes /etc/network/interfaces.d/50-cloud-init.
  NET_PACKAGES=(ifupdown isc-dhcp-client)
  NET_BINARIES=(usr/sbin/dhclient usr/sbin/ifup)
  ;;
debian-13 | debian-13-arm64)
  SUITE=trixie
  VERSION_NAME="Debian GNU/Linux 13"
  # netplan renders for systemd-networkd; resolved is the resolver (as in
  # Debian's genericcloud images: debian-cloud-images' FAI classes).
  NET_PACKAGES=(netplan.io systemd-resolved libnss-resolve)
  NET_BINARIES=(usr/sbin/netplan usr/lib/systemd/systemd-networkd usr/lib/systemd/systemd-resolved)
  ;;
*)
  printf 'build.sh: error: unknown cell %q (known: debian-12, debian-13, debian-13-arm64)\n' "$CELL" >&2
  exit 2
  ;;
esac
DISK_SIZE_MIB=2048        # virtual disk size; cloud-init growpart grows the fs to the real disk
ESP_START=2048            # first partition: EFI system partition (FAT, 32 MiB); sectors 1..2047 hold GRUB's BIOS core.img
ESP_SECTORS=65536
PART_START=$((ESP_START + ESP_SECTORS)) # second and last partition: the root filesystem (growpart grows it)
# A fixed filesystem UUID so fstab and grub.cfg can name the root before it exists.
# (Every VM made from the image shares it, as with any cloud image.)
ROOT_UUID=7fc270ba-ca5f-4f44-907e-acf36902a099
# Kernel command line; the LAST console= becomes /dev/console, which is where
# systemd and cloud-init write their output, so ttyS0 goes last (as on Debian's
# official cloud images) so that QEMU's -serial captures it. no_timer_check:
# under TCG on a busy host the kernel's early IO-APIC timer check can miss its
# window and panic ("IO-APIC + timer doesn't work"); VM images skip the check
# (Fedora's cloud images do the same).
KERNEL_CMDLINE="root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200 no_timer_check"
# Debian architecture of the image. arm64: the serial console is the PL011
# UART of QEMU's virt machine (ttyAMA0), the bootloader GRUB arm64-efi only.
ARCH=amd64
BOOT_PACKAGES=(grub-pc-bin grub-efi-amd64-bin)
if [[ $CELL == *-arm64 ]]; then
  ARCH=arm64
  BOOT_PACKAGES=(grub-efi-arm64-bin)
  KERNEL_CMDLINE="root=UUID=$ROOT_UUID ro console=tty0 console=ttyAMA0,115200"
fi
PACKAGES=(
  "linux-image-cloud-$ARCH" initramfs-tools systemd-sysv dbus udev
  cloud-init cloud-guest-utils openssh-server sudo
  "${NET_PACKAGES[@]}" iproute2 netbase
  "${BOOT_PACKAGES[@]}" adduser passwd
)

# ------------------------------------------------------------------ helpers --
# fd 4 is the real stderr (progress); later stdout/stderr of the tools go to a log.
exec 4>&2
LOG=/dev/null
log() { printf '[build.sh %(%T)T] %s\n' -1 "$*" | tee -a "$LOG" >&4; }
die() { printf 'build.sh: error: %s\n' "$*" | tee -a "$LOG" >&4; exit 1; }

# put_le FILE OFFSET NBYTES VALUE: overwrite NBYTES at OFFSET of FILE with VALUE, little-endian.
put_le() {
  local file=$1 off=$2 n=$3 val=$4 i esc=""
  for ((i = 0; i < n; i++)); do
    esc+=$(printf '\\x%02x' $(((val >> (8 * i)) & 0xff)))
  done
  # shellcheck disable=SC2059 # the format string is the escaped bytes
  printf "$esc" | dd of="$file" bs=1 seek=$((off)) conv=notrunc status=none
}

# first_source_uri SUFFIX: the first http(s) URI in this host's (enabled) apt
# sources whose path ends in SUFFIX ("/debian" or "/debian-security").
first_source_uri() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    grep -v '^[[:space:]]*#' "$f" | grep -oE 'https?://[^][[:space:]]+' | sed 's:/*$::' |
      grep -m1 -E "$1\$" && return 0
  done
  return 1
}

# ----------------------------------------------------------- output / cache --
SELF=$(realpath "${BASH_SOURCE[0]}")
# Everything that defines the image. Add any file this script starts reading.
RECIPE_FILES=("$SELF")
HASH=$({ cat "${RECIPE_FILES[@]}"; echo "cell=$CELL"; } | sha256sum | cut -c1-16)
CACHE=${CLOUDIMG_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/packer-plugin-cloudimg}
NAME=$CELL-cloudimg-$HASH

if [[ $# -gt 1 ]]; then
  die "usage: $0 [CELL] [OUTPUT.qcow2]"
elif [[ $# -eq 1 ]]; then
  OUT=$(realpath -m "$1")
  USE_CACHED=0
else
  OUT=$CACHE/$NAME.qcow2
  USE_CACHED=1
fi
if [[ $USE_CACHED == 1 && -f $OUT ]]; then
  log "cached image: $OUT"
  echo "$OUT"
  exit 0
fi

# ------------------------------------------------------------ preconditions --
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot and the package install need it)"
missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
need debootstrap debootstrap
need mkfs.ext4 e2fsprogs
need e2fsck e2fsprogs
need sfdisk fdisk
need mkfs.fat dosfstools
need mcopy mtools
need qemu-img qemu-utils
need flock util-linux
need chroot coreutils
[[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
HOST_ARCH=$(dpkg --print-architecture)
# A foreign architecture runs its programs (debootstrap's second stage, the
# maintainer scripts, grub-mkimage) through QEMU's user-mode emulator.
QEMU_USER=""
if [[ $ARCH != "$HOST_ARCH" ]]; then
  case $ARCH in
  arm64) QEMU_USER=/usr/bin/qemu-aarch64-static ;;
  *) die "cannot build $ARCH images on $HOST_ARCH" ;;
  esac
  [[ -x $QEMU_USER ]] || missing+=(qemu-user-static)
fi
# GRUB's tools and images are taken from grub-pc-bin *inside* the image, so the
# core.img and the modules copied to /boot/grub always match: no host GRUB needed.
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  die "missing tools; install them with: apt-get install -y ${missing[*]}"
fi

MIRROR=${DEBIAN_MIRROR:-$(first_source_uri /debian || echo http://deb.debian.org/debian)}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(first_source_uri /debian-security || echo http://deb.debian.org/debian-security)}

# .deb caches per suite and architecture: a bookworm build never sees trixie's
# packages, an arm64 build never amd64's.
DEBS=$CACHE/debs/$SUITE
[[ $ARCH == amd64 ]] || DEBS=$CACHE/debs/$SUITE-$ARCH
mkdir -p "$CACHE" "$DEBS/debootstrap" "$DEBS/apt-archives" "$CACHE/logs" "$(dirname "$OUT")"
# One build at a time per cache (parallel test processes share it); a waiter
# then finds the image the first one built.
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "waiting for another build in $CACHE"
  flock 9
fi
if [[ $USE_CACHED == 1 && -f $OUT ]]; then
  log "cached image (built meanwhile): $OUT"
  echo "$OUT"
  exit 0
fi

# Holding the lock, any build.* dir in the cache is left over from a build that
# was killed (SIGKILL skips the trap): unmount its /proc and remove it.
rm -f "$CACHE"/*.qcow2.tmp.* # partial outputs of killed builds
for stale in "$CACHE"/build.*/; do
  [[ -d $stale ]] || continue
  log "removing stale ${stale%/}"
  if mountpoint -q "${stale}root/proc"; then umount "${stale}root/proc" || umount -l "${stale}root/proc"; fi
  if grep -qF " ${stale}" /proc/self/mounts; then
    die "something is still mounted under $stale"
  fi
  rm -rf --one-file-system "$stale"
done

# From here on the tools' output goes to a log kept in the cache (shown in
# part on failure), or to stderr with VERBOSE=1; fd 3 keeps the real stdout.
LOG=$CACHE/logs/$NAME.log
: >"$LOG"
exec 3>&1
if [[ ${VERBOSE:-0} == 1 ]]; then
  exec 1>&4
else
  exec 1>>"$LOG" 2>&1
fi
log "building $OUT (log: $LOG, mirror: $MIRROR)"
START=$SECONDS

WORK=$(mktemp -d "$CACHE/build.XXXXXX")
ROOT=$WORK/root
DISK=$WORK/disk.raw
TMP_OUT=""
BINFMT_MOUNTED=0 # 1: this build mounted binfmt_misc (unmounted at exit)
BINFMT_ENTRY=""  # the binfmt_misc entry this build registered (removed at exit)

cleanup() {
  local rc=$?
  set +e
  if [[ -n $BINFMT_ENTRY && -e $BINFMT_ENTRY ]]; then
    echo -1 >"$BINFMT_ENTRY"
  fi
  if [[ $BINFMT_MOUNTED == 1 ]]; then
    umount /proc/sys/fs/binfmt_misc
  fi
  if mountpoint -q "$ROOT/proc" 2>/dev/null; then
    umount "$ROOT/proc" || umount -l "$ROOT/proc"
  fi
  # Never rm -rf through a mount (a bind of /dev would be fatal); refuse instead.
  if grep -qF " $WORK/" /proc/self/mounts; then
    printf 'build.sh: something is still mounted under %s; not removing it\n' "$WORK" >&4
  else
    rm -rf --one-file-system "$WORK"
  fi
  [[ -n $TMP_OUT ]] && rm -f "$TMP_OUT"
  if ((rc != 0)); then
    if [[ ${VERBOSE:-0} != 1 && -s $LOG ]]; then
      printf '\n--- last lines of %s ---\n' "$LOG" >&4
      tail -n 40 "$LOG" >&4
    fi
    printf 'build.sh: FAILED (exit %d)\n' "$rc" >&4
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# binfmt_misc: the kernel runs the image's arm64 programs through QEMU_USER.
# Use an enabled qemu-aarch64 entry if the host has one (binfmt-support or
# systemd-binfmt registered it); else register one for this build with flag F
# (the kernel opens the interpreter now, so it works inside the chroot too) and
# remove it, and the mount, when the build ends (cleanup).
if [[ -n $QEMU_USER ]]; then
  BINFMT=/proc/sys/fs/binfmt_misc
  if ! mountpoint -q "$BINFMT"; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc on $BINFMT"
    BINFMT_MOUNTED=1
  fi
  if [[ -e $BINFMT/qemu-aarch64 ]] && head -n1 "$BINFMT/qemu-aarch64" | grep -qx enabled; then
    log "binfmt_misc: using the host's qemu-aarch64 entry"
  else
    [[ -e $BINFMT/cloudimg-aarch64 ]] && echo -1 >"$BINFMT/cloudimg-aarch64" # left by a killed build
    # ELF64, little-endian, e_machine 0xb7 (EM_AARCH64): the magic and mask of
    # QEMU's scripts/qemu-binfmt-conf.sh.
    printf '%s' ':cloudimg-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU_USER"':F' >"$BINFMT/register" ||
      die "cannot register $QEMU_USER in binfmt_misc"
    BINFMT_ENTRY=$BINFMT/cloudimg-aarch64
    log "binfmt_misc: registered $QEMU_USER for this build"
  fi
fi


# in_root CMD...: run CMD in the chroot with a clean environment (in particular
# no TMPDIR from the host, which would not exist inside).
in_root() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    chroot "$ROOT" "$@"
}

# -------------------------------------------------------------- base system --
log "debootstrap --variant=minbase --arch=$ARCH $SUITE"
debootstrap --variant=minbase --arch="$ARCH" --cache-dir="$DEBS/debootstrap" "$SUITE" "$ROOT" "$MIRROR"

# --------------------------------------------------- configure and install --
log "configuring the root filesystem"
# Build-time sources: the reachable mirror, with updates and security fixes.
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
# Forbid maintainer scripts to start services in the chroot (removed later).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# debootstrap copies the host's hostname; cloud-init sets the real one.
# Debian's genericcloud images ship an empty /etc/hostname (systemd then
# uses its fallback, "localhost"); the old cell keeps the word itself, so
# the reset is seen to restore either shape.
case $CELL in
debian-12) echo localhost >"$ROOT/etc/hostname" ;;
*) : >"$ROOT/etc/hostname" ;;
esac
chmod 0644 "$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# fstab before the kernel install, so initramfs-tools sees the root fs type.
cat >"$ROOT/etc/fstab" <<EOF
# <file system> <mount point> <type> <options> <dump> <pass>
UUID=$ROOT_UUID / ext4 rw,discard,errors=remount-ro 0 1
EOF
if [[ $CELL == debian-12 ]]; then
  mkdir -p "$ROOT/etc/network"
  cat >"$ROOT/etc/network/interfaces" <<'EOF'
# interfaces(5) file used by ifup(8) and ifdown(8)
# cloud-init writes the NIC configuration to interfaces.d/50-cloud-init.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF
fi
mkdir -p "$ROOT/etc/cloud/cloud.cfg.d"
# As Debian's official images do: keep /etc/hosts in line with the hostname
# cloud-init sets (else sudo tries DNS for it, which may time out).
cat >"$ROOT/etc/cloud/cloud.cfg.d/01_cloudimg.cfg" <<'EOF'
manage_etc_hosts: true
EOF
# System locale C.UTF-8, as on official images. Without /etc/default/locale,
# cloud-init's locale module wants en_US.UTF-8, and Debian's locale-gen ignores
# its argument, so update-locale fails and cloud-init ends in "status: error".
echo LANG=C.UTF-8 >"$ROOT/etc/default/locale"

# /proc is the one mount the package scripts want (debootstrap does the same).
mount -t proc proc "$ROOT/proc"

# Reuse .debs from earlier builds; apt checks them against the fresh indexes.
find "$DEBS/apt-archives" -name '*.deb' -exec cp -t "$ROOT/var/cache/apt/archives/" {} +
log "apt-get install ${PACKAGES[*]}"
in_root apt-get update -q
in_root apt-get -q -y -o Dpkg::Use-Pty=0 dist-upgrade
in_root apt-get -q -y -o Dpkg::Use-Pty=0 install --no-install-recommends "${PACKAGES[@]}"
if [[ $CELL != debian-12 ]]; then
  # networkd brings up what netplan renders from cloud-init's network-config;
  # resolved answers on the stub resolver /etc/resolv.conf points to.
  in_root systemctl enable systemd-networkd.service systemd-resolved.service
fi
# Keep exactly this build's .debs as the cache for the next one.
find "$DEBS/apt-archives" -name '*.deb' -delete
find "$ROOT/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -t "$DEBS/apt-archives/" {} +

# ----------------------------------------------------------------- bootloader --
log "preparing GRUB (from the image's ${BOOT_PACKAGES[*]})"
# /vmlinuz and /initrd.img are symlinks the kernel package keeps up to date,
# so the config survives kernel upgrades in the guest (there is no update-grub).
[[ -e $ROOT/vmlinuz && -e $ROOT/initrd.img ]] || die "kernel symlinks /vmlinuz, /initrd.img missing"
mkdir -p "$ROOT/boot/grub"
# amd64: GRUB's own serial terminal on COM1. arm64: the firmware's console
# (AAVMF sends it to the PL011) is GRUB's default terminal already.
GRUB_TERMINAL=""
[[ $ARCH == amd64 ]] && GRUB_TERMINAL="serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial"
cat >"$ROOT/boot/grub/grub.cfg" <<EOF
# Written by packer-plugin-cloudimg's test/e2e/image/build.sh (no update-grub here).
$GRUB_TERMINAL
set timeout=0
menuentry '$VERSION_NAME (cloud image)' {
	search --no-floppy --fs-uuid --set=root $ROOT_UUID
	linux /vmlinuz $KERNEL_CMDLINE
	initrd /initrd.img
}
EOF
# core.img's built-in config: find the root filesystem, then normal mode reads
# $prefix/grub.cfg.
cat >"$ROOT/tmp/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ROOT_UUID
set prefix=(\$root)/boot/grub
EOF
if [[ $ARCH == arm64 ]]; then
  # EFI only: EFI/BOOT/BOOTAA64.EFI (the removable-media path, booted by AAVMF
  # without NVRAM entries) from the image's grub-efi-arm64-bin.
  mkdir -p "$ROOT/boot/grub/arm64-efi"
  cp "$ROOT"/usr/lib/grub/arm64-efi/*.mod "$ROOT"/usr/lib/grub/arm64-efi/*.lst "$ROOT/boot/grub/arm64-efi/"
  in_root grub-mkimage -O arm64-efi -o /tmp/bootaa64.efi -c /tmp/early.cfg -p /boot/grub \
    part_gpt ext2 fat search search_fs_uuid normal configfile linux echo test efi_gop
  cp "$ROOT/tmp/bootaa64.efi" "$WORK/bootaa64.efi"
else
# Modules next to grub.cfg, as grub-install would leave them; they match the
# core.img built below because both come from the same package.
mkdir -p "$ROOT/boot/grub/i386-pc"
cp "$ROOT"/usr/lib/grub/i386-pc/*.mod "$ROOT"/usr/lib/grub/i386-pc/*.lst "$ROOT/boot/grub/i386-pc/"
in_root grub-mkimage -O i386-pc -o /tmp/core.img -c /tmp/early.cfg -p /boot/grub \
  biosdisk part_msdos ext2 search search_fs_uuid normal configfile linux echo test serial terminal
cp "$ROOT/tmp/core.img" "$WORK/core.img"
cp "$ROOT/usr/lib/grub/i386-pc/boot.img" "$WORK/boot.img"
# The same for UEFI: an EFI GRUB with the same early config and grub.cfg, its
# modules beside grub.cfg too (from the image's grub-efi-amd64-bin).
mkdir -p "$ROOT/boot/grub/x86_64-efi"
cp "$ROOT"/usr/lib/grub/x86_64-efi/*.mod "$ROOT"/usr/lib/grub/x86_64-efi/*.lst "$ROOT/boot/grub/x86_64-efi/"
in_root grub-mkimage -O x86_64-efi -o /tmp/bootx64.efi -c /tmp/early.cfg -p /boot/grub \
  part_msdos ext2 fat search search_fs_uuid normal configfile linux echo test serial terminal efi_gop
cp "$ROOT/tmp/bootx64.efi" "$WORK/bootx64.efi"
fi

# ----------------------------------------------------- make it look unbooted --
log "cleaning up"
in_root apt-get clean
umount "$ROOT/proc"
rm -f "$ROOT/usr/sbin/policy-rc.d"
# Sources the image keeps: the canonical mirrors, as on official images.
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
rm -rf "$ROOT"/var/lib/apt/lists/*
mkdir -p "$ROOT/var/lib/apt/lists/partial"
# Present but empty: systemd generates a fresh machine-id on first boot.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*     # cloud-init generates new host keys
rm -rf "$ROOT/var/lib/cloud"
rm -f "$ROOT/etc/resolv.conf"        # the host's copy; dhclient writes the guest's
if [[ $CELL != debian-12 ]]; then
  # resolved's stub, as systemd-resolved's own package sets it up on a booted system.
  ln -s ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
fi
rm -rf "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/bootstrap.log
find "$ROOT/var/cache/apt" -name '*.bin' -delete

# Sanity checks on the tree that becomes the filesystem.
for f in usr/bin/cloud-init usr/bin/growpart usr/sbin/resize2fs usr/sbin/sshd usr/bin/sudo \
  "${NET_BINARIES[@]}" usr/bin/ip usr/sbin/useradd usr/sbin/adduser; do
  [[ -x $ROOT/$f ]] || die "/$f missing from the image"
done
[[ -f $ROOT/etc/machine-id && ! -s $ROOT/etc/machine-id ]] || die "/etc/machine-id not empty"
[[ ! -e $ROOT/var/lib/dbus/machine-id && ! -e $ROOT/var/lib/cloud ]] || die "boot state left in the image"
! compgen -G "$ROOT/etc/ssh/ssh_host_*" >/dev/null || die "SSH host keys left in the image"

# --------------------------------------------------------------------- disk --
log "writing the disk image"
DISK_SECTORS=$((DISK_SIZE_MIB * 2048))
PART_SECTORS=$((DISK_SECTORS - PART_START))
truncate -s "${DISK_SIZE_MIB}M" "$DISK"
if [[ $ARCH == arm64 ]]; then
  # GPT (UEFI only): the EFI system partition, then the root partition (type
  # "Linux root (ARM-64)" of the Discoverable Partitions Specification) up to
  # the backup GPT at the end.
  sfdisk --quiet "$DISK" <<EOF
label: gpt
start=$ESP_START, size=$ESP_SECTORS, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP
start=$PART_START, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=root
EOF
  PART_SECTORS=$(sfdisk --json "$DISK" | tr -d '\n' | grep -o '"start": *'"$PART_START"', *"size": *[0-9]*' | grep -o '[0-9]*$')
  [[ -n $PART_SECTORS ]] || die "cannot read the root partition's size back from sfdisk"
  EFI_BINARY=bootaa64.efi EFI_NAME=BOOTAA64.EFI
else
# MBR ("dos") label: the EFI system partition (type ef) from 1 MiB, then a
# bootable Linux partition to the end.
sfdisk --quiet "$DISK" <<EOF
label: dos
label-id: 0x$(cut -c1-8 <<<"$ROOT_UUID")
start=$ESP_START, size=$ESP_SECTORS, type=ef
start=$PART_START, size=$PART_SECTORS, type=83, bootable
EOF
  EFI_BINARY=bootx64.efi EFI_NAME=BOOTX64.EFI
fi
# The EFI system partition: FAT written at its offset, GRUB at the path UEFI
# firmware boots when it has no boot entries.
mkfs.fat -F 16 -n ESP --offset "$ESP_START" "$DISK" $((ESP_SECTORS / 2))
ESP_IMG="$DISK@@$((ESP_START * 512))"
MTOOLS_SKIP_CHECK=1 mmd -i "$ESP_IMG" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$ESP_IMG" "$WORK/$EFI_BINARY" "::/EFI/BOOT/$EFI_NAME"
# The filesystem goes straight into the file at the partition's offset. The
# image's own mke2fs.conf picks the features, so its e2fsck/GRUB know them all.
MKE2FS_CONFIG=$ROOT/etc/mke2fs.conf mkfs.ext4 -F -q -U "$ROOT_UUID" \
  -E offset=$((PART_START * 512)) -d "$ROOT" "$DISK" "${PART_SECTORS}s"
# e2fsprogs' unix I/O manager accepts "file?offset=N".
e2fsck -fn "$DISK?offset=$((PART_START * 512))"

if [[ $ARCH == amd64 ]]; then
# GRUB by hand, i.e. what grub-install/grub-bios-setup do for an MBR disk with
# core.img embedded right after the MBR (layout: grub include/grub/i386/pc/boot.h).
# 1) boot.img's code (bytes 0..439) into the MBR; bytes 440..511 (disk
#    signature, partition table, 0x55AA) stay as sfdisk wrote them.
dd if="$WORK/boot.img" of="$DISK" bs=440 count=1 conv=notrunc status=none
put_le "$DISK" 0x5c 8 1       # KERNEL_SECTOR: LBA of core.img's first sector
put_le "$DISK" 0x64 1 0xff    # BOOT_DRIVE: 0xff = use the drive the BIOS booted from
put_le "$DISK" 0x66 2 0x9090  # DRIVE_CHECK: NOP the jump, as grub-bios-setup does for hard disks
# 2) core.img starts with diskboot.img, which boot.img loads from LBA 1; its
#    last bytes hold a blocklist {u64 start, u16 sectors, u16 segment} telling it
#    where the rest of core.img is: LBA 2 onwards, contiguous here.
CORE_BYTES=$(stat -c %s "$WORK/core.img")
CORE_SECTORS=$(((CORE_BYTES + 511) / 512))
((CORE_SECTORS < ESP_START)) || die "core.img ($CORE_SECTORS sectors) does not fit before the first partition"
put_le "$WORK/core.img" 0x1f4 8 2                     # start LBA
put_le "$WORK/core.img" 0x1fc 2 $((CORE_SECTORS - 1)) # sectors after diskboot (segment 0x820 stays)
dd if="$WORK/core.img" of="$DISK" bs=512 seek=1 conv=notrunc status=none
fi

# ------------------------------------------------------------------- qcow2 --
log "converting to compressed qcow2"
TMP_OUT=$(mktemp "$OUT.tmp.XXXXXX")
qemu-img convert -q -f raw -O qcow2 -c "$DISK" "$TMP_OUT"
chmod 0644 "$TMP_OUT"
mv -f "$TMP_OUT" "$OUT"
TMP_OUT=""

log "done in $((SECONDS - START))s: $OUT ($(du -h --apparent-size "$OUT" | cut -f1))"
echo "$OUT" >&3
exit
}
