#!/usr/bin/env bash
# `make demo-chained`: builds example/chained offline — the base from the
# locally built Debian 12 test image, then production and development from
# the newest base through the cloudimg-repository data source — twice, with
# keep_last = 1, so that the second run removes the first one's images; then checks the repository and
# shows what each stage's metadata says of its base.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
packer=$root/tools/bin/packer
export CHECKPOINT_DISABLE=1
# Plain text when the output goes to a file or a pipe (no ANSI colour codes).
if [ ! -t 1 ]; then export PACKER_NO_COLOR=1 ANSIBLE_NOCOLOR=1; fi
export PACKER_PLUGIN_PATH=$root/.demo/plugins

say() { printf '\n==> %s\n' "$*"; }

say "Test cloud image (built once, then cached)"
image=$("$root/test/e2e/image/build.sh" | tail -n 1)
sum=$(sha256sum "$image" | cut -d ' ' -f 1)
echo "$image sha256:$sum"

say "Installing the plugin into $PACKER_PLUGIN_PATH"
rm -rf "$PACKER_PLUGIN_PATH"
"$packer" plugins install --path "$root/packer-plugin-cloudimg" github.com/packer-cloudimg/cloudimg

cd "$root/example/chained"
repo=$root/.demo/chained-repository
rm -rf "$repo"
say "packer validate (the stages' data source is not run: no repository yet)"
"$packer" validate -var "repository=$repo" -var "iso_url=$image" -var "iso_checksum=sha256:$sum" base
"$packer" validate -var "repository=$repo" stages

say "packer build base (about a minute under software emulation)"
"$packer" build -var "repository=$repo" -var "iso_url=$image" -var "iso_checksum=sha256:$sum" -var image_id=1 base
for run in 1 2; do
	say "packer build stages, run $run of 2: production and development from the newest base, side by side"
	"$packer" build -var "repository=$repo" -var "image_id=$run" -var keep_last=1 stages
done

say "The repository: the base, and the newest of each stage (keep_last = 1)"
(cd "$repo" && sha256sum -c SHA256SUMS && jq -r '.images[] | "\(.created)  \(.name)  \(.path)"' index.json)
say "What production's metadata says of its source"
jq .source "$repo/stages-2/production.qcow2.metadata.json"
