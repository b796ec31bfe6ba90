#!/bin/sh
# The provisioning of `make bench`'s real-size job (issue #17), run as root by
# both builders' shell provisioner. It writes what a node image's build writes,
# from the data disk made by realsize-data.sh (the guest has no network):
#  - a local apt repository of real Debian packages (the guest's own suite),
#    from which a few installed packages are installed again (dpkg unpacks and
#    configures them);
#  - BENCH_LAYERS copies (default 3) of the unpacked package tree, as the
#    layers of pre-pulled container images: ~20 000 files each, of every size,
#    partly compressible.
# About 0.13 GB + BENCH_LAYERS x 0.71 GB in all (2.27 GB measured with the
# default).
set -eu
layers=${BENCH_LAYERS:-3}
data=/mnt/benchdata
mkdir -p "$data"
mount -o ro LABEL=benchdata "$data"
. /etc/os-release

mkdir -p /srv/apt
cp -a "$data/apt/$VERSION_CODENAME/." /srv/apt/
echo 'deb [trusted=yes] file:/srv/apt ./' > /etc/apt/sources.list.d/bench.list
apt="-q -o Dir::Etc::sourcelist=sources.list.d/bench.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
apt-get $apt update
DEBIAN_FRONTEND=noninteractive apt-get $apt install -y --reinstall --allow-downgrades \
	coreutils findutils tar procps iproute2 openssh-client sudo

for i in $(seq "$layers"); do
	mkdir -p "/var/lib/containers/layers/$i"
	cp -a "$data/rootfs/." "/var/lib/containers/layers/$i/"
done
umount "$data"
rm /etc/apt/sources.list.d/bench.list
sync
echo "bench: the provisioning wrote $(du -scb /srv/apt /var/lib/containers/layers | tail -n 1 | cut -f 1) bytes of files"
