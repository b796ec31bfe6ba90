#!/usr/bin/env bash
# The data disk of `make bench`'s real-size job (issue #17): an ext4 file
# system labelled `benchdata`, written without mounting (mkfs.ext4 -d), that
# both builders attach read-only to the build VM. It holds what the guest's
# provisioning copies and installs (see realsize.sh):
#   apt/<suite>/   the real Debian packages the test images were built from
#                  (the image recipe's cache), one flat apt repository per
#                  suite (Packages from dpkg-scanpackages);
#   rootfs/<suite>/ those packages unpacked: a tree of ~20 000 files of every
#                  size, the kind a node image's pre-pulled container images
#                  bring.
# Usage: realsize-data.sh OUTPUT.raw   (prints the data's size)
set -euo pipefail
out=$1
cache=${CLOUDIMG_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/packer-plugin-cloudimg}
for tool in dpkg-deb dpkg-scanpackages mkfs.ext4; do
	command -v "$tool" >/dev/null || { echo "realsize-data.sh: $tool not found (apt-get install dpkg-dev e2fsprogs)" >&2; exit 1; }
done
shopt -s nullglob
suites=()
for d in "$cache"/debs/*/; do
	s=$(basename "$d")
	debs=("$d"*/*.deb)
	[[ $s == *-* || ${#debs[@]} -eq 0 ]] && continue # other architectures' caches (e.g. trixie-arm64)
	suites+=("$s")
done
if [ ${#suites[@]} -eq 0 ]; then
	echo "realsize-data.sh: no Debian packages in $cache/debs: build the test images first (make images)" >&2
	exit 1
fi

tree=$(mktemp -d "${TMPDIR:-/tmp}/benchdata.XXXXXX")
trap 'rm -rf "$tree"' EXIT
for s in "${suites[@]}"; do
	mkdir -p "$tree/apt/$s" "$tree/rootfs/$s"
	for f in "$cache/debs/$s"/*/*.deb; do
		cp -n "$f" "$tree/apt/$s/"
	done
	(cd "$tree/apt/$s" && dpkg-scanpackages -m . 2>/dev/null > Packages)
	for f in "$tree/apt/$s"/*.deb; do
		dpkg-deb -x "$f" "$tree/rootfs/$s"
	done
done
bytes=$(du -sb "$tree" | cut -f 1)
# Room for the file system's own metadata (~20 000 files): a quarter more.
rm -f "$out"
mkfs.ext4 -q -F -L benchdata -d "$tree" "$out" "$(( bytes / 1024 * 5 / 4 / 1024 + 64 ))M" >/dev/null
echo "$bytes"
