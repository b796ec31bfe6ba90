package kvm

import (
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// parseSize turns a disk size such as "20G", "512M", "10240" (MiB, like the
// stock qemu builder) or "1T" into bytes.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	if t == "" {
		return 0, fmt.Errorf("%q is not a size; use a number with a unit such as 20G or 512M", s)
	}
	mult := uint64(1 << 20)
	switch last := t[len(t)-1]; last {
	case 'K', 'k':
		mult, t = 1<<10, t[:len(t)-1]
	case 'M', 'm':
		mult, t = 1<<20, t[:len(t)-1]
	case 'G', 'g':
		mult, t = 1<<30, t[:len(t)-1]
	case 'T', 't':
		mult, t = 1<<40, t[:len(t)-1]
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size; use a number with a unit such as 20G or 512M", s)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// parseMAC accepts an Ethernet MAC address and returns it in lower case.
func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not an Ethernet MAC address such as 52:54:00:12:34:56", s)
	}
	if hw[0]&1 == 1 {
		return "", fmt.Errorf("%q is a multicast address; the first byte must be even", s)
	}
	return hw.String(), nil
}

// randomMAC returns a locally administered unicast address in QEMU's 52:54:00 range.
func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}
