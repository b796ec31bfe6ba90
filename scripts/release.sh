#!/usr/bin/env bash
# Builds the release archives with goreleaser. Usage:
#   scripts/release.sh            # from a tag vX.Y.Z: goreleaser release --clean
#   scripts/release.sh --snapshot # local check, nothing published (dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
GORELEASER=${GORELEASER:-goreleaser}
# The plugin API version that Packer expects in the binary name comes from
# the plugin itself.
API_VERSION=$(go run . describe | sed -n 's/.*"api_version":"\([^"]*\)".*/\1/p')
[ -n "$API_VERSION" ] || { echo "could not read api_version from 'describe'" >&2; exit 1; }
export API_VERSION
if [ "${1:-}" = "--snapshot" ]; then
	exec "$GORELEASER" release --snapshot --clean --skip=publish
fi
exec "$GORELEASER" release --clean "$@"
