//go:build tools

// Package tools pins OpenTofu (cmd/tofu), the Terraform-compatible runner the
// Terraform example and its end-to-end test use (see GNUmakefile).
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
