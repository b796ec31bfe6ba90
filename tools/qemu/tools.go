//go:build tools

// Package tools pins the stock Packer QEMU builder plugin that `make bench`
// compares cloudimg-kvm with (issue #8's performance goal).
package tools

import _ "github.com/hashicorp/packer-plugin-qemu"
