//go:build tools

// Package tools pins the newest Packer release the Go module proxy serves
// (tools/bin/packer): every end-to-end scenario runs on it.
package tools

import _ "github.com/hashicorp/packer"
