//go:build tools

// Package tools pins the Terraform libvirt provider (dmacvicar v0.8.3) that the
// Terraform example and its end-to-end test install from a local mirror.
package tools

import _ "github.com/dmacvicar/terraform-provider-libvirt"
