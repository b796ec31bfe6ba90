// Package version holds the plugin's version. Releases override Version and
// VersionPrerelease with -ldflags "-X .../version.Version=1.2.3 -X .../version.VersionPrerelease=".
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the main version number being run right now.
	Version = "0.0.1"
	// VersionPrerelease marks a pre-release; empty for a release.
	VersionPrerelease = "dev"
	// VersionMetadata is optional build metadata (semver "+..." part).
	VersionMetadata = ""
	// PluginVersion is what the plugin set reports to Packer.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)
