//go:build tools

// Package tools pins the Ansible provisioner plugin that the end-to-end tests use.
package tools

import _ "github.com/hashicorp/packer-plugin-ansible"
