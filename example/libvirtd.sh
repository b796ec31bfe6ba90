# shellcheck shell=bash
# Sourced by example/demo.sh and example/terraform/demo.sh (bash, as root).
#
# ensure_libvirtd VIRT_TYPE: when no libvirtd answers on qemu:///system,
# starts virtlogd and libvirtd for the demo (logs in /var/log/libvirt) and
# waits for libvirtd to answer (up to 60 s; then the demo stops). It appends
# the PIDs it started to the caller's array `daemons` (kill only those) and
# sets `lv` to a directory the caller removes, or leaves both untouched when
# libvirtd already runs. VIRT_TYPE qemu with a /dev/kvm present: a /dev/kvm
# without hardware virtualisation makes libvirt 9.0 re-probe QEMU on every
# call (minutes per virt-install), so libvirtd runs in its own mount
# namespace where the device is hidden.
ensure_libvirtd() {
	local virt_type=$1
	virsh version >/dev/null 2>&1 && return 0
	echo "(no libvirtd answers: starting virtlogd and libvirtd for the demo, logs in /var/log/libvirt)"
	mkdir -p /var/log/libvirt /var/run/libvirt
	virtlogd >>/var/log/libvirt/virtlogd.log 2>&1 &
	daemons+=($!)
	if [ -e /dev/kvm ] && [ "$virt_type" = qemu ]; then
		lv=$(mktemp -d) && touch "$lv/no-kvm" && chmod 0 "$lv/no-kvm"
		{ cat /etc/libvirt/qemu.conf; echo 'namespaces = [ ]'; } >"$lv/qemu.conf"
		unshare --mount --propagation private sh -c 'mount --bind "$1" /dev/kvm &&
			mount --bind "$2" /etc/libvirt/qemu.conf && exec libvirtd' sh "$lv/no-kvm" "$lv/qemu.conf" \
			>>/var/log/libvirt/libvirtd.log 2>&1 &
	else
		libvirtd >>/var/log/libvirt/libvirtd.log 2>&1 &
	fi
	daemons+=($!)
	for _ in $(seq 60); do virsh version >/dev/null 2>&1 && break; sleep 1; done
	virsh version >/dev/null # stops the demo if libvirtd did not come up
}
