#!/bin/sh
# cloudimg-cloudinit-reset: read the account files and the guest facts.
# Generated; read-only. ROOT (environment) reads below that directory.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
ROOT=${ROOT:-}
ROOT=${ROOT%/}
NONCE=n0nce

say() { printf '%s\n' "$*"; }

say "BEGIN $NONCE"
# The files to read (guest paths; their names need no quoting).
set -- /etc/passwd /etc/shadow /etc/group /etc/gshadow /etc/subuid /etc/subgid /etc/login.defs /var/lib/cloud/data/set-hostname
# The hostname reset needs the seed's copy of the source image's files, or
# without one the files themselves (each file read costs a process).
if [ -d "$ROOT/var/lib/cloud/cloudimg-source-etc" ]; then
	set -- "$@" /var/lib/cloud/cloudimg-source-etc/hostname /var/lib/cloud/cloudimg-source-etc/hostname.absent /var/lib/cloud/cloudimg-source-etc/hosts /var/lib/cloud/cloudimg-source-etc/hosts.absent
else
	set -- "$@" /etc/hostname /etc/hosts
fi
if [ -f "$ROOT/etc/os-release" ]; then set -- "$@" /etc/os-release; else set -- "$@" /usr/lib/os-release; fi
if [ -d "$ROOT/etc/sudoers.d" ]; then
	for f in "$ROOT"/etc/sudoers.d/* "$ROOT"/etc/sudoers.d/.[!.]*; do
		if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
		n=${f##*/}
		case $n in
		*[!A-Za-z0-9._~@+-]*) say "NOTE /etc/sudoers.d: skipped an entry with an unusual name"; continue ;;
		esac
		set -- "$@" "/etc/sudoers.d/$n"
	done
fi
# One sha256sum for all of them (each process costs a fraction of a second
# in an emulated guest), then each file's contents.
existing=
for p in "$@"; do
	if [ -f "$ROOT$p" ] && [ -r "$ROOT$p" ]; then existing="$existing .$p"; fi
done
SUMS=
# shellcheck disable=SC2086 # one word per path
if [ -n "$existing" ]; then SUMS=$(cd "$ROOT/" && sha256sum -- $existing 2>/dev/null); fi
for p in "$@"; do
	sum=
	while read -r s f; do
		if [ "$f" = ".$p" ]; then sum=$s; fi
	done <<CLOUDIMG_SUMS
$SUMS
CLOUDIMG_SUMS
	if [ -n "$sum" ]; then
		say "FILE $sum $p"
		base64 <"$ROOT$p"
		say END
	else
		say "NOFILE $p"
	fi
done
say "FACT kernel $(uname -r 2>/dev/null || true)"
# The build's hostname, without a process (read is built in).
if [ -r "$ROOT/proc/sys/kernel/hostname" ] && read -r h <"$ROOT/proc/sys/kernel/hostname"; then
	say "FACT hostname $h"
fi
# The MAC addresses of the build VM's NICs: the interfaces backed by a
# device (not lo, bridges, veth or tunnels), again without a process.
for d in "$ROOT"/sys/class/net/*; do
	if [ -e "$d/device" ] && [ -r "$d/address" ] && read -r a <"$d/address"; then
		say "FACT mac $a"
	fi
done
# cloud-init's version comes from the package list where there is one:
# starting cloud-init (Python) takes seconds in an emulated guest.
# The package list is the image's SBOM: name, version, architecture and the
# source package each was built from, in one dpkg-query.
if [ -f "$ROOT/var/lib/dpkg/status" ] && command -v dpkg-query >/dev/null 2>&1; then
	say "FACT package-manager dpkg"
	dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='PKG\t${Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' 2>/dev/null || say "NOTE dpkg-query failed"
elif [ -z "$ROOT" ] && command -v rpm >/dev/null 2>&1; then
	say "FACT package-manager rpm"
	if command -v cloud-init >/dev/null 2>&1; then
		say "FACT cloud-init $(cloud-init --version 2>&1 | head -n 1)"
	fi
	rpm -qa --qf 'PKG\tinstalled\t%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n' 2>/dev/null || say "NOTE rpm -qa failed"
else
	say "NOTE Warning: the guest has no dpkg-query (nor rpm): no package list is recorded, and the image's SBOM will list no packages"
fi
say "DONE $NONCE"
