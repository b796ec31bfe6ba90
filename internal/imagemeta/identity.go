package imagemeta

import (
	"errors"
	"fmt"
	"time"
)

// IdentityPath is where the cloudimg-cloudinit-reset provisioner writes an
// image's Identity inside the guest. It is not per-instance state: no reset
// removes it, and every VM made from the image finds it as the build left it.
const IdentityPath = "/etc/cloudimg/image.json"

// IdentitySchemaVersion is the version of the Identity document written
// by this plugin.
const IdentitySchemaVersion = 1

// Identity is the small document an image carries about itself
// (IdentityPath): which build made it. The image's own checksum cannot be
// in it (the image is written after the reset); BuildID and SourceName
// join it to exactly one image of a repository: the index entry with the
// same build_id and source_name (IndexEntry), whose metadata records the
// same build (Build.PackerRunUUID, Build.SourceName).
type Identity struct {
	// SchemaVersion is IdentitySchemaVersion.
	SchemaVersion int `json:"schema_version"`
	// BuildID is the Packer run's UUID (PACKER_RUN_UUID), shared by the
	// builds of one `packer build`; "" when Packer gave none.
	BuildID string `json:"build_id"`
	// SourceName is the source block's name (Packer's build name, as the
	// metadata's build.source_name records it); it tells the images of one
	// run apart.
	SourceName string `json:"source_name"`
	// BuilderType is the builder type, e.g. "cloudimg-kvm".
	BuilderType string `json:"builder_type,omitempty"`
	// SourceImage is the image the build started from, as the builder
	// published it (URL with credentials removed, checksum as given);
	// omitted when the builder published none.
	SourceImage *IdentitySource `json:"source_image,omitempty"`
	// ResetAt is when the reset ran (RFC 3339, UTC, whole seconds).
	ResetAt time.Time `json:"reset_at"`
	// PluginVersion is the version of this plugin.
	PluginVersion string `json:"plugin_version"`
	// Labels are the labels the reset was given (its `labels` option);
	// omitted when none.
	Labels map[string]string `json:"labels,omitempty"`
}

// IdentitySource is the source image an Identity names.
type IdentitySource struct {
	URL      string `json:"url"`
	Checksum string `json:"checksum,omitempty"`
}

// MarshalIdentity returns the canonical JSON encoding of id (fields in
// the order of the struct, map keys sorted, two-space indentation, a
// trailing newline),
// with the schema version set, the time in UTC whole seconds and
// credentials removed from the source URL. It refuses an identity without
// a source name or reset time, which could not be joined to the metadata.
func MarshalIdentity(id *Identity) ([]byte, error) {
	if id == nil {
		return nil, errors.New("imagemeta: nil identity")
	}
	c := *id
	if c.SourceName == "" {
		return nil, errors.New("imagemeta: identity without a source name")
	}
	if c.ResetAt.IsZero() {
		return nil, errors.New("imagemeta: identity without a reset time")
	}
	if c.SchemaVersion == 0 {
		c.SchemaVersion = IdentitySchemaVersion
	}
	if c.SchemaVersion != IdentitySchemaVersion {
		return nil, fmt.Errorf("imagemeta: cannot write identity schema version %d (this plugin writes %d)", c.SchemaVersion, IdentitySchemaVersion)
	}
	c.ResetAt = normTime(c.ResetAt)
	if c.SourceImage != nil {
		s := *c.SourceImage
		s.URL = StripURLCredentials(s.URL)
		c.SourceImage = &s
	}
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	return marshalCanonical(&c)
}

// Matches reports whether e is the image id names: the same build id and
// source name (both non-empty).
func (id *Identity) Matches(e IndexEntry) bool {
	return id.BuildID != "" && id.SourceName != "" && e.BuildID == id.BuildID && e.SourceName == id.SourceName
}
