//go:build tools

// Package tools pins the oras CLI release that the end-to-end tests use as an
// independent client of the registry (test/e2e/registry_test.go).
package tools

import _ "oras.land/oras/cmd/oras"
