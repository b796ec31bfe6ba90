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

emit() {
	f=$ROOT$1
	if [ -f "$f" ] && [ -r "$f" ]; then
		say "FILE $(sha256sum < "$f" | cut -d' ' -f1) $1"
		base64 < "$f"
		say END
	else
		say "NOFILE $1"
	fi
}

say "BEGIN $NONCE"
for n in passwd shadow group gshadow subuid subgid login.defs; do
	emit "/etc/$n"
done
if [ -f "$ROOT/etc/os-release" ]; then emit /etc/os-release; else emit /usr/lib/os-release; fi
if [ -d "$ROOT/etc/sudoers.d" ]; then
	for f in "$ROOT"/etc/sudoers.d/* "$ROOT"/etc/sudoers.d/.[!.]*; do
		if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
		n=${f##*/}
		case $n in
		*[!A-Za-z0-9._~@+-]*) say "NOTE /etc/sudoers.d: skipped an entry with an unusual name"; continue ;;
		esac
		emit "/etc/sudoers.d/$n"
	done
fi
say "FACT kernel $(uname -r 2>/dev/null || true)"
# cloud-init's version comes from the package list where there is one:
# starting cloud-init (Python) takes seconds in an emulated guest.
if [ -f "$ROOT/var/lib/dpkg/status" ] && command -v dpkg-query >/dev/null 2>&1; then
	dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='PKG\t${Status}\t${Package}\t${Version}\n' 2>/dev/null || say "NOTE dpkg-query failed"
elif [ -z "$ROOT" ] && command -v rpm >/dev/null 2>&1; then
	if command -v cloud-init >/dev/null 2>&1; then
		say "FACT cloud-init $(cloud-init --version 2>&1 | head -n 1)"
	fi
	rpm -qa --qf 'PKG\tinstalled\t%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n' 2>/dev/null || say "NOTE rpm -qa failed"
fi
say "DONE $NONCE"
