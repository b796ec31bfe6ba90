//go:build tools

// Package tools pins the oldest Packer release the README supports
// (tools/bin/packer-1.11.2): the validate tests and one build scenario run on it.
package tools

import _ "github.com/hashicorp/packer"
