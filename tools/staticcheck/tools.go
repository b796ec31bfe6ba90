//go:build tools

// Package tools pins the staticcheck release that `make lint` runs.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
