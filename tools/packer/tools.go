//go:build tools

// Package tools pins the Packer release that the end-to-end tests drive.
package tools

import _ "github.com/hashicorp/packer"
