#!/usr/bin/env bash
# Boot-check a cloud image built by build.sh (a manual/debug tool; the e2e
# tests proper are in Go).
#
# Usage:
#   test/e2e/image/smoke.sh IMG.qcow2
#
# Boots IMG (through a throw-away qcow2 overlay grown to 4 GiB or by 1 GiB, so IMG stays
# pristine) under QEMU with a NoCloud seed ISO (label "cidata") that creates a
# user with a fresh ed25519 key, then over SSH checks that cloud-init is done,
# sudo works, the instance directory exists, the root fs was grown and systemd
# is running. Exits non-zero on failure, printing the serial log's tail.
#
# Environment:
#   SMOKE_ACCEL=tcg|kvm   default: kvm only if /dev/kvm is usable AND the CPU
#                         shows vmx/svm (a /dev/kvm without them never boots a guest)
#   SMOKE_TIMEOUT=SECS    deadline for the SSH banner and for cloud-init (default 900)
#   SMOKE_KEEP=1          keep the work dir (serial log, overlay, key) afterwards
#   SMOKE_ANALYZE=1       also print where the boot's time went: systemd-analyze
#                         critical-chain and blame, cloud-init analyze blame
set -euo pipefail
# The whole script is one { ... } group, so bash parses it completely before
# running it: editing the file while it runs cannot derail a run.
{

log() { printf '[smoke.sh %(%T)T +%3ds] %s\n' -1 $((SECONDS - T0)) "$*" >&2; }
T0=$SECONDS

[[ $# -eq 1 && -f $1 ]] || { echo "usage: $0 IMG.qcow2" >&2; exit 2; }
IMG=$(realpath "$1")
TIMEOUT=${SMOKE_TIMEOUT:-900}
USER_NAME=smoke

missing=()
for t in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils genisoimage:genisoimage \
  ssh:openssh-client ssh-keygen:openssh-client ss:iproute2; do
  command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if ((${#missing[@]})); then
  echo "smoke.sh: missing tools; install them with: apt-get install -y $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cloudimg-smoke.XXXXXX")
OK=0
strip_ansi() { sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r//g'; }
cleanup() {
  set +e
  if [[ -s $WORK/qemu.pid ]]; then
    local pid
    pid=$(cat "$WORK/qemu.pid")
    # Only a QEMU we started: the pidfile is ours, check the command anyway.
    if kill -0 "$pid" 2>/dev/null && grep -q qemu-system "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
  fi
  if [[ $OK != 1 && -f $WORK/serial.log ]]; then
    echo "---- serial log tail ($WORK/serial.log) ----" >&2
    tail -n 80 "$WORK/serial.log" | strip_ansi >&2
    echo "---- end of serial log ----" >&2
  fi
  if [[ ${SMOKE_KEEP:-0} == 1 ]]; then
    echo "smoke.sh: work dir kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  [[ $OK == 1 ]] && echo "smoke.sh: PASS" >&2 || echo "smoke.sh: FAIL" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { log "FAIL: $*"; exit 1; }

# ---------------------------------------------------------- seed and disk --
ssh-keygen -q -t ed25519 -N '' -C smoke -f "$WORK/key"
IID=smoke-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
mkdir "$WORK/seed"
cat >"$WORK/seed/meta-data" <<EOF
instance-id: $IID
local-hostname: smoke
EOF
cat >"$WORK/seed/user-data" <<EOF
#cloud-config
users:
  - name: $USER_NAME
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys:
      - $(cat "$WORK/key.pub")
EOF
genisoimage -quiet -output "$WORK/seed.iso" -volid cidata -joliet -rock \
  "$WORK/seed/user-data" "$WORK/seed/meta-data"
qemu-img create -q -f qcow2 -b "$IMG" -F qcow2 "$WORK/overlay.qcow2"
# Grow the disk (to 4 GiB, or by 1 GiB when the image is already larger) so
# that growpart has something to do.
vsize=$(qemu-img info --output=json "$IMG" | sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p')
OVERLAY_BYTES=$((4 << 30))
((vsize + (1 << 30) > OVERLAY_BYTES)) && OVERLAY_BYTES=$((vsize + (1 << 30)))
qemu-img resize -q "$WORK/overlay.qcow2" "$OVERLAY_BYTES"

# ------------------------------------------------------------------- boot --
if [[ -n ${SMOKE_ACCEL:-} ]]; then
  ACCEL=$SMOKE_ACCEL
elif [[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  ACCEL=kvm
else
  ACCEL=tcg
fi
# The builder's default CPU under TCG (faster to emulate than max).
CPU=qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt
[[ $ACCEL == kvm ]] && CPU=host

# A free local port for the SSH forward (QEMU fails if someone takes it meanwhile).
PORT=""
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 40000))
  if [[ -z $(ss -Hltn "sport = :$p") ]]; then PORT=$p; break; fi
done
[[ -n $PORT ]] || fail "no free TCP port found"

log "booting $IMG (accel=$ACCEL, ssh port $PORT, work dir $WORK)"
BOOT_T=$SECONDS
qemu-system-x86_64 \
  -name cloudimg-smoke -machine pc -accel "$ACCEL" -cpu "$CPU" -smp 2 -m 1024 \
  -drive "file=$WORK/overlay.qcow2,if=virtio,format=qcow2" \
  -drive "file=$WORK/seed.iso,media=cdrom,format=raw,readonly=on" \
  -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
  -device virtio-rng-pci \
  -serial "file:$WORK/serial.log" -display none -monitor none \
  -daemonize -pidfile "$WORK/qemu.pid"
QEMU_PID=$(cat "$WORK/qemu.pid")

qemu_alive() { kill -0 "$QEMU_PID" 2>/dev/null; }

# QEMU's user network accepts TCP before the guest's sshd listens, so wait for
# the SSH identification string itself.
banner() {
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -c 4 <&3" 2>/dev/null
}
until [[ $(banner || true) == SSH- ]]; do
  qemu_alive || fail "QEMU exited before SSH came up"
  ((SECONDS - BOOT_T < TIMEOUT)) || fail "no SSH banner after ${TIMEOUT}s"
  sleep 1
done
BANNER_S=$((SECONDS - BOOT_T))
log "SSH banner after ${BANNER_S}s"

SSH=(ssh -i "$WORK/key" -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR
  -o ServerAliveInterval=5 -o ServerAliveCountMax=3 "$USER_NAME@127.0.0.1")

# cloud-init restarts sshd during its config stage and the user's key appears
# only once cloud-init created the user: retry while ssh itself fails (255).
CI_OUT=""
while :; do
  rc=0
  CI_OUT=$("${SSH[@]}" cloud-init status --wait --long 2>&1) || rc=$?
  ((rc != 255)) && break
  qemu_alive || fail "QEMU exited while waiting for cloud-init"
  ((SECONDS - BOOT_T < TIMEOUT)) || fail "cloud-init not reachable after ${TIMEOUT}s: $CI_OUT"
  sleep 2
done
CI_S=$((SECONDS - BOOT_T))
printf '%s\n' "$CI_OUT" | grep -v '^\.*$' | sed 's/^\.*//; s/^/    /' >&2
((rc == 0)) || fail "cloud-init status exited $rc"
grep -q '^status: done' <<<"$CI_OUT" || fail "cloud-init status is not done"
log "cloud-init done after ${CI_S}s"

# ----------------------------------------------------------------- checks --
# One script in the guest; every line "CHECK name ok|FAIL detail".
GUEST_OUT=$("${SSH[@]}" bash -s -- "$IID" <<'EOF' 2>&1
iid=$1
check() { if eval "$2" >/dev/null 2>&1; then echo "CHECK $1 ok"; else echo "CHECK $1 FAIL"; fi; }
check "sudo-works" 'sudo -n true && [ "$(sudo -n id -u)" = 0 ]'
check "instance-dir" "test -d /var/lib/cloud/instances/$iid"
root_bytes=$(df -B1 --output=size / | tail -n1 | tr -d ' ')
echo "INFO root fs size: $root_bytes bytes ($(findmnt -no SOURCE /))"
check "rootfs-grown" '[ "$root_bytes" -gt $((OVERLAY_BYTES - (600 << 20))) ]'
check "machine-id-set" 'test -s /etc/machine-id'
check "ssh-host-keys" 'ls /etc/ssh/ssh_host_ed25519_key'
check "hostname" '[ "$(hostname)" = smoke ]'
state=$(systemctl is-system-running 2>/dev/null)
echo "INFO system state: $state"
if [ "$state" = running ]; then
  echo "CHECK system-running ok"
else
  echo "CHECK system-running FAIL"
  systemctl --failed --no-legend --plain 2>&1 | sed 's/^/INFO failed unit: /'
fi
echo "INFO kernel: $(uname -r); cmdline: $(cat /proc/cmdline)"
echo "INFO $(systemd-analyze time 2>/dev/null | head -n1)"
EOF
) || true
if [[ ${SMOKE_ANALYZE:-0} == 1 ]]; then
  GUEST_OUT+=$'\n'$("${SSH[@]}" 'echo "== systemd-analyze critical-chain"; systemd-analyze critical-chain --no-pager 2>&1 | head -n 30
echo "== systemd-analyze blame"; systemd-analyze blame --no-pager 2>&1 | head -n 25
echo "== cloud-init analyze blame"; sudo -n cloud-init analyze blame 2>&1 | head -n 25' 2>&1) || true
fi
printf '%s\n' "$GUEST_OUT" | sed 's/^/    /' >&2
grep -q '^CHECK' <<<"$GUEST_OUT" || fail "guest checks did not run"
if grep -q '^CHECK .* FAIL$' <<<"$GUEST_OUT"; then
  fail "guest checks failed: $(grep '^CHECK .* FAIL$' <<<"$GUEST_OUT" | cut -d' ' -f2 | tr '\n' ' ')"
fi

# The serial console must carry systemd's and cloud-init's output, not just the kernel's.
grep -q 'Cloud-init v\.' "$WORK/serial.log" || fail "no cloud-init output on the serial console"

log "all checks passed (SSH banner ${BANNER_S}s, cloud-init done ${CI_S}s after QEMU start)"
OK=1
exit
}
