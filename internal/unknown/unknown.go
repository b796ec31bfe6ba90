// Package unknown names the placeholder Packer passes for a value it cannot
// know yet, shared by the builder and the data sources.
package unknown

// Value is what Packer passes for a string it cannot know yet: an output of
// a data source during `packer validate` (HCL2 templates). A field holding
// it is checked later, when the value is known.
const Value = "<unknown>"
