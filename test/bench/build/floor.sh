#!/usr/bin/env bash
# The floor of `make bench`: the work cloudimg-kvm does, by hand, with nothing
# in between: overlay, seed, QEMU, wait for the SSH banner, cloud-init status
# --wait, the same provisioning, power off, convert. Prints one line per phase.
# Usage: floor.sh IMAGE WORKDIR
set -euo pipefail
image=$(realpath "$1"); work=$2
mkdir -p "$work"; cd "$work"
now() { date +%s.%N; }
phase() { printf 'floor %-12s %6.1fs\n' "$1" "$(awk -v a="$(now)" -v b="$2" 'BEGIN{print a-b}')"; }
accel=tcg; cpu=qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt # the builder's default
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; cpu=host; fi

t=$(now)
qemu-img convert -f qcow2 -O qcow2 "$image" disk.qcow2
ssh-keygen -q -t ed25519 -N '' -f key
mac=52:54:00:$(od -An -N3 -tx1 /dev/urandom | sed 's/ /:/g; s/^://')
cat > user-data <<UD
#cloud-config
users:
  - name: packer
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: true
    ssh_authorized_keys: ["$(cat key.pub)"]
ssh_pwauth: false
ssh_genkeytypes: [ed25519]
UD
printf 'instance-id: floor-%s\nlocal-hostname: floor\n' "$RANDOM" > meta-data
printf 'network:\n  version: 2\n  ethernets:\n    nic0:\n      match: {macaddress: "%s"}\n      dhcp4: true\n' "$mac" > network-config
genisoimage -quiet -output seed.iso -volid cidata -joliet -rock user-data meta-data network-config
phase disk "$t"

t=$(now)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
qemu-system-x86_64 -machine type=pc -accel $accel -cpu $cpu -smp 2 -m 1024M -display none -nodefaults -vga none \
  -serial file:serial.log -qmp unix:qmp.sock,server=on,wait=off \
  -drive file=disk.qcow2,format=qcow2,cache=unsafe,discard=unmap,if=virtio \
  -drive file=seed.iso,format=raw,media=cdrom,readonly=on,if=ide \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22 -device virtio-net-pci,netdev=n0,mac=$mac \
  -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT
until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; head -c 4 <&3" 2>/dev/null | grep -q SSH-; do sleep 0.25; done
ssh_() { ssh -q -i key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -p "$port" packer@127.0.0.1 "$@"; }
until ssh_ true; do sleep 0.25; done
phase boot-ssh "$t"

t=$(now)
until ssh_ cloud-init status --wait >/dev/null; do sleep 1; done
phase cloud-init "$t"

t=$(now)
ssh_ 'echo bench | sudo tee /etc/bench-marker >/dev/null; sudo sync'
phase provisioning "$t"

t=$(now)
python3 - <<'PY'
import json, socket
s = socket.socket(socket.AF_UNIX); s.connect("qmp.sock"); f = s.makefile("rw")
f.readline()
for c in ("qmp_capabilities", "system_powerdown"):
    f.write(json.dumps({"execute": c}) + "\n"); f.flush(); f.readline()
PY
wait $qemu || true
trap - EXIT
phase shutdown "$t"

t=$(now)
qemu-img convert -f qcow2 -O qcow2 disk.qcow2 floor.qcow2
phase convert "$t"
