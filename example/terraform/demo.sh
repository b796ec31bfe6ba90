#!/usr/bin/env bash
# `make demo-terraform`: the Terraform loop on the image `make demo` built.
# Runs example/terraform (a copy, in .demo/terraform) with OpenTofu from
# `make tools` and the libvirt provider from a local filesystem mirror: one
# node from the newest image of the demo's name in example/image-repository-local,
# its /etc/cloudimg/image.json shown; when the repository holds an older image
# of that name (`make demo` ran twice), the node is rolled back to it by
# image_sha256 and forward again; then everything is destroyed. The node is
# reached over a QEMU user-mode NIC forwarded on 127.0.0.1 (the module's
# domain_xslt), no libvirt network. Needs root (qemu:///system).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=example/libvirtd.sh
source "$root/example/libvirtd.sh"
tofu=$root/tools/bin/tofu
provider=$root/tools/bin/terraform-provider-libvirt_v0.8.3
repo=$root/example/image-repository-local
# What `make demo` builds: example/demo.sh's name=debian-12-node, development
# stage (the post-processor's image_name <name>-<stage>).
name=${DEMO_IMAGE_NAME:-debian-12-node-development}
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

say() { printf '\n==> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "make demo-terraform needs root (qemu:///system)" >&2; exit 1; }
[ -f "$repo/index.json" ] || { echo "no $repo/index.json: run make demo first" >&2; exit 1; }
# The images of that name, newest first (as the module orders them).
mapfile -t shas < <(python3 - "$repo/index.json" "$name" <<'PY'
import json, sys
idx = json.load(open(sys.argv[1]))
imgs = [e for e in idx["images"] if e["name"] == sys.argv[2]]
for e in sorted(imgs, key=lambda e: (e["created"], e["path"]), reverse=True):
    print(e["checksums"]["sha256"])
PY
)
if [ ${#shas[@]} -eq 0 ]; then
	echo "no image named $name in $repo/index.json: run make demo first, or set DEMO_IMAGE_NAME to one of the index's names:" >&2
	python3 -c 'import json, sys; print("\n".join(sorted({"  " + e["name"] for e in json.load(open(sys.argv[1]))["images"]})) or "  (none)")' "$repo/index.json" >&2
	exit 1
fi
echo "${#shas[@]} image(s) named $name; newest sha256 ${shas[0]}"

work=$root/.demo/terraform
rm -rf "$work"
mkdir -p "$work/module" "$work/plugins/registry.terraform.io/dmacvicar/libvirt/0.8.3/linux_amd64"
cp "$root"/example/terraform/*.tf "$work/module/"
cp "$provider" "$work/plugins/registry.terraform.io/dmacvicar/libvirt/0.8.3/linux_amd64/"
: >"$work/cli.tfrc"
export TF_CLI_CONFIG_FILE=$work/cli.tfrc
# One operation at a time: provider 0.8.3 can hang for good when it reads
# two cloud-init disks at once (README.md, "Traps").
export TF_CLI_ARGS_plan=-parallelism=1 TF_CLI_ARGS_apply=-parallelism=1 TF_CLI_ARGS_destroy=-parallelism=1
# and no command may hang the demo: each gets 10 minutes (an apply takes
# seconds; the nodes boot after it).
tf() { timeout --kill-after=30 600 "$tofu" "$@"; }

virsh() { command virsh -c qemu:///system "$@"; }
daemons=() lv="" applied=""
cleanup() {
	set +e
	if [ -n "$applied" ]; then
		echo "destroying what was applied (log: $work/destroy.log)" >&2
		(cd "$work/module" && tf destroy -auto-approve -no-color >"$work/destroy.log" 2>&1) ||
			echo "tofu destroy failed (see $work/destroy.log): domains demo-0-*, their volumes and the pool cloudimg-demo may be left; virsh -c qemu:///system list --all, pool-list --all" >&2
	fi
	[ -z "$lv" ] || rm -rf "$lv"
	[ ${#daemons[@]} -eq 0 ] || kill "${daemons[@]}" # only the daemons started here
}
trap cleanup EXIT
virt_type=qemu
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then virt_type=kvm; fi
ensure_libvirtd "$virt_type"

ssh-keygen -q -t ed25519 -N '' -C cloudimg-demo -f "$work/id_ed25519"
# The node of each image gets its own forward (the roll starts the new domain
# before it destroys the old one): a user-mode NIC on 127.0.0.1:<port>, at
# PCI slot 0x10, chosen by the domain's name (demo-0-<12 hex of the sha256>).
declare -A ports=()
when=""
for sha in "${shas[@]:0:2}"; do
	ports[$sha]=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	when+="<xsl:when test=\"/domain/name = 'demo-0-${sha:0:12}'\"><qemu:arg value=\"-netdev\"/><qemu:arg value=\"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${ports[$sha]}-:22\"/><qemu:arg value=\"-device\"/><qemu:arg value=\"virtio-net-pci,netdev=n0,bus=pci.0,addr=0x10\"/></xsl:when>"
done
cat >"$work/nic.xsl" <<EOF
<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <xsl:template match="@*|node()"><xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy></xsl:template>
  <xsl:template match="/domain">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
      <qemu:commandline><xsl:choose>$when</xsl:choose></qemu:commandline>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
EOF
cpu_mode=""
[ $virt_type = kvm ] && cpu_mode=host-passthrough
# The node's disk: 2 GiB more than the largest of the images it may run
# (the provider refuses a disk smaller than its backing image; growpart
# grows the root file system into the rest on the first boot).
disk_gib=$(python3 - "$repo/index.json" "${shas[@]:0:2}" <<'PY'
import json, subprocess, sys
idx = json.load(open(sys.argv[1]))
root = sys.argv[1].rsplit("/", 1)[0]
largest = 0
for e in idx["images"]:
    if e["checksums"]["sha256"] in sys.argv[2:]:
        info = subprocess.run(["qemu-img", "info", "-U", "--output=json", root + "/" + e["path"]],
                              check=True, capture_output=True, text=True).stdout
        largest = max(largest, json.loads(info)["virtual-size"])
print(-(-largest // (1 << 30)) + 2)
PY
)
python3 - "$work/module/terraform.tfvars.json" <<PY
import json, sys
json.dump({
    "repository": "$repo", "image_name": "$name", "node_count": 1, "name": "demo",
    "pool_name": "cloudimg-demo", "pool_path": "/var/lib/libvirt/images/cloudimg-demo",
    "disk_size_gib": $disk_gib, "vcpu": 2, "domain_type": "$virt_type", "cpu_mode": "$cpu_mode",
    "network_name": "", "user": "demo",
    "ssh_authorized_key": open("$work/id_ed25519.pub").read().strip(),
    "domain_xslt": open("$work/nic.xsl").read(),
}, open(sys.argv[1], "w"), indent=2)
PY

cd "$work/module"
say "tofu init -plugin-dir (the provider from a local mirror, no registry)"
"$tofu" init -plugin-dir="$work/plugins" -no-color | tail -n 3

node_ssh() { # port command…
	local port=$1
	shift
	ssh -i "$work/id_ed25519" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR demo@127.0.0.1 "$@"
}
# deploy SHA: apply with image_sha256=SHA (empty: the newest, shas[0]) and
# show the node's identity.
deploy() {
	local sha=${1:-${shas[0]}} port
	port=${ports[$sha]}
	say "tofu apply -var image_sha256=${1:-\"\" (the newest)}"
	applied=1
	if ! tf apply -auto-approve -no-color -var "image_sha256=$1" >"$work/apply.log" 2>&1; then
		tail -n 30 "$work/apply.log" >&2
		exit 1
	fi
	grep -E '^(libvirt_|Apply complete)' "$work/apply.log" || true
	"$tofu" output -no-color image
	t0=$SECONDS
	until node_ssh "$port" true 2>/dev/null; do
		if [ $((SECONDS - t0)) -gt 900 ]; then echo "no SSH login within 15 minutes" >&2; exit 1; fi
		sleep 5
	done
	echo "logged in as demo on 127.0.0.1:$port after $((SECONDS - t0)) s"
	for _ in 1 2 3; do # cloud-init restarts sshd once
		node_ssh "$port" 'echo "hostname: $(hostname)"; cloud-init status --wait >/dev/null; cloud-init status; df -h / | tail -n 1; echo "/etc/cloudimg/image.json:"; cat /etc/cloudimg/image.json' && break
		sleep 5
	done
}

deploy ""
if [ ${#shas[@]} -gt 1 ]; then
	deploy "${shas[1]}"
	say "Rolled back to the previous image; forward again to the newest"
	deploy ""
else
	say "Only one image named $name: run make demo again to build a second one, then make demo-terraform rolls between them"
fi

say "tofu destroy"
tf destroy -auto-approve -no-color | tail -n 1
applied=""
cleanup
trap - EXIT
say "Done"
