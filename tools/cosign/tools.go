//go:build tools

// Package tools pins the cosign release that the signing tests run (the
// unit tests of internal/signing and the e2e scenarios): v3.1.3, the newest
// the module proxy serves that builds with this project's Go.
package tools

import _ "github.com/sigstore/cosign/v3/cmd/cosign"
