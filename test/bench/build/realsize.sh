#!/bin/sh
# The provisioning of `make bench`'s real-size job (issue #17), run as root by
# both builders' shell provisioner. It writes what a node image's build writes,
# from the data disk made by realsize-data.sh (the guest has no network):
#  - a local apt repository of real Debian packages (the guest's own suite),
#    from which a few installed packages are installed again (dpkg unpacks and
#    configures them), then removed, as a real build removes the packages it
#    downloaded (`apt-get clean`) and the media it installed from: the image
#    does not ship them, but their blocks were written;
#  - BENCH_LAYERS copies (default 3) of the unpacked package tree, as the
#    layers of pre-pulled container images: ~20 000 files each, of every size,
#    partly compressible.
# About 0.13 GB + BENCH_LAYERS x 0.71 GB in all (2.27 GB measured with the
# default), of which the 0.13 GB of packages are removed again.
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
wrote=$(du -scb /srv/apt /var/lib/containers/layers | tail -n 1 | cut -f 1)
freed=$(du -sb /srv/apt | cut -f 1)
rm -r /srv/apt /etc/apt/sources.list.d/bench.list
apt-get clean
sync
echo "bench: the provisioning wrote $wrote bytes of files, of which it removed $freed"
