// Package imagemeta is the Packer-independent logic of the
// "cloudimg-metadata" post-processor.
//
// For each image file a build produced it can
//
//   - hash the file with several digests in a single read pass (HashFile),
//   - recognise its format and virtual size (InspectReader, from the same read as the checksums),
//   - describe it, its source, its build and the VCS state of the template
//     in a versioned, deterministic JSON document (Metadata, WriteMetadata,
//     GitInfo),
//   - register it in an image repository directory holding index.json and a
//     GNU-style SHA256SUMS, safely against concurrent builds (Repo.Add), and
//     remove the older images of its name and label set beyond the newest N
//     under the same lock (Repo.AddKeepLast),
//   - read a repository back, from a directory or an http(s) URL, and pick
//     the newest image of a name and labels (Location, Index.Newest).
//
// The package knows nothing of Packer: the plugin layer fills the structs
// from the build and calls these functions.
package imagemeta
