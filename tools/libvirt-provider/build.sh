#!/bin/sh
# build.sh OUT: builds terraform-provider-libvirt (the version go.mod pins)
# to OUT, with go-libvirt-241.patch applied to the go-libvirt it requires
# (see that file: a deadlock that stopped `terraform apply` while it read a
# libvirt_cloudinit_disk back). The patched copy of go-libvirt is a
# temporary directory that a temporary go.mod (-modfile) replaces the module
# with; the module cache and this directory stay untouched.
set -eu
out=$1
cd "$(dirname "$0")"
go mod download github.com/digitalocean/go-libvirt
src=$(go list -m -f '{{.Dir}}' github.com/digitalocean/go-libvirt)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -R "$src" "$work/go-libvirt"
chmod -R u+w "$work/go-libvirt"
patch --quiet --forward -d "$work/go-libvirt" -p1 <go-libvirt-241.patch
cp go.mod go.sum "$work/"
go mod edit -modfile="$work/go.mod" -replace="github.com/digitalocean/go-libvirt=$work/go-libvirt"
CGO_ENABLED=0 go build -modfile="$work/go.mod" -o "$out" github.com/dmacvicar/terraform-provider-libvirt
