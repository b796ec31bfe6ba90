package cidata

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

const cloudConfigHeader = "#cloud-config"

// maxNodes bounds the size of the user's cloud-config after alias expansion,
// so that a "billion laughs" document fails instead of eating the memory.
const maxNodes = 100_000

// userData returns the generated user-data and the warnings of the merge.
func (c *Config) userData() ([]byte, []string, error) {
	keyTypes := c.SSHGenKeyTypes
	if keyTypes == nil {
		keyTypes = DefaultSSHGenKeyTypes
	}
	user := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	addPair(user, "name", str(c.Username))
	addPair(user, "sudo", str("ALL=(ALL) NOPASSWD:ALL"))
	addPair(user, "shell", str("/bin/bash"))
	addPair(user, "lock_passwd", boolNode(true))
	addPair(user, "ssh_authorized_keys", strSeq([]string{strings.TrimSpace(c.AuthorizedKey)}))

	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	addPair(root, "users", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{user}})
	addPair(root, "ssh_pwauth", boolNode(false))
	addPair(root, "ssh_genkeytypes", strSeq(keyTypes))
	// The build's host key fingerprints on the console are of no use: the
	// reset deletes those keys. Printing them costs the guest a second
	// under emulation.
	ssh := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	addPair(ssh, "emit_keys_to_console", boolNode(false))
	addPair(root, "ssh", ssh)
	// The hostname goes into user-data, not meta-data's local-hostname: see
	// Build. fqdn keeps what local-hostname gave (a dotted name is split
	// into hostname and fqdn; a plain one is both).
	if c.Hostname != "" {
		short, _, _ := strings.Cut(c.Hostname, ".")
		addPair(root, "hostname", str(short))
		addPair(root, "fqdn", str(c.Hostname))
	}
	save := str(saveEtcScript)
	save.Style = yaml.LiteralStyle
	addPair(root, "bootcmd", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{save}})

	var warnings []string
	theirs, err := parseCloudConfig(c.UserData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.userDataName(), err)
	}
	if theirs != nil {
		warnings, err = mergeTop(root, theirs, c.Username)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.userDataName(), err)
		}
		for i, w := range warnings {
			warnings[i] = c.userDataName() + ": " + w
		}
	}
	out, err := encode(root)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: cannot write the merged cloud-config: %w", c.userDataName(), err)
	}
	return append([]byte(cloudConfigHeader+"\n"), out...), warnings, nil
}

// parseCloudConfig parses the user's #cloud-config into a mapping node with
// aliases expanded, merge keys resolved and comments dropped. It returns nil
// for no user data (empty, whitespace, comments only or null).
func parseCloudConfig(data []byte) (*yaml.Node, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if err := checkHeader(data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, nil // only comments
	} else if err != nil {
		return nil, syntaxError(data, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, fmt.Errorf("line %d: a second YAML document; cloud-init reads a single document, remove the \"---\" separator", more.Line)
	} else if err != io.EOF {
		return nil, syntaxError(data, err)
	}
	// Decoding into Go values catches what the parser lets through:
	// duplicate keys, aliases of themselves, excessive aliasing, invalid
	// merge keys.
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %s", yamlErr(err))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.AliasNode && top.Alias != nil {
		top = top.Alias
	}
	switch {
	case top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null":
		return nil, nil
	case top.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("line %d: the top level is a %s; a cloud-config is a mapping of keys such as packages, runcmd or write_files", top.Line, kindName(top))
	}
	e := expander{budget: maxNodes}
	return e.copy(top)
}

// checkHeader makes sure data is a #cloud-config; it names what it is
// otherwise.
func checkHeader(data []byte) error {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	first := strings.TrimRight(string(line), " \t\r")
	if first == cloudConfigHeader {
		return nil
	}
	var what string
	lower := strings.ToLower(first)
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		what = "gzip-compressed data"
	case strings.HasPrefix(first, "#!"):
		what = "a shell script"
	case strings.HasPrefix(lower, "## template:"):
		what = "a jinja template"
	case strings.HasPrefix(first, "#include"):
		what = "an #include list"
	case strings.HasPrefix(first, "#cloud-config-archive"):
		what = "a cloud-config archive"
	case strings.HasPrefix(first, "#cloud-config-jsonp"):
		what = "a cloud-config JSON patch"
	case strings.HasPrefix(first, "#cloud-boothook"):
		what = "a boothook"
	case strings.HasPrefix(first, "#part-handler"):
		what = "a part handler"
	case strings.HasPrefix(first, "#upstart-job"):
		what = "an upstart job"
	case strings.HasPrefix(lower, "content-type:"), strings.HasPrefix(lower, "mime-version:"):
		what = "a MIME multipart message"
	case strings.HasPrefix(lower, "#cloud-config"):
		what = "not headed exactly \"#cloud-config\""
	default:
		what = "not headed \"#cloud-config\""
	}
	return fmt.Errorf("only #cloud-config user data is supported, and this is %s (first line %s); "+
		"start it with a \"#cloud-config\" line, and put files in write_files and commands in runcmd or bootcmd",
		what, quoteLine(first))
}

func quoteLine(s string) string {
	if len(s) > 60 {
		// cut at a rune boundary
		i := 60
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar (" + strings.TrimPrefix(n.ShortTag(), "!!") + ")"
	case yaml.MappingNode:
		return "mapping"
	}
	return "node"
}

// expander deep-copies a node tree, replacing aliases by copies of what they
// point to and resolving "<<" merge keys, without anchors or comments.
type expander struct{ budget int }

var errTooBig = fmt.Errorf("the document is too large after expanding aliases (more than %d nodes)", maxNodes)

func (e *expander) copy(n *yaml.Node) (*yaml.Node, error) {
	if e.budget--; e.budget < 0 {
		return nil, errTooBig
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias %q", n.Line, n.Value)
		}
		return e.copy(n.Alias)
	}
	out := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	switch n.Kind {
	case yaml.SequenceNode:
		out.Content = make([]*yaml.Node, 0, len(n.Content))
		for _, c := range n.Content {
			cc, err := e.copy(c)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, cc)
		}
	case yaml.MappingNode:
		if err := e.copyMapping(n, out); err != nil {
			return nil, err
		}
	case yaml.ScalarNode:
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	return out, nil
}

func (e *expander) copyMapping(n, out *yaml.Node) error {
	if len(n.Content)%2 != 0 {
		return fmt.Errorf("line %d: malformed mapping", n.Line)
	}
	explicit := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i]; !isMergeKey(k) {
			if id := keyID(k); id != "" {
				explicit[id] = true
			}
		}
	}
	merged := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			ck, err := e.copy(k)
			if err != nil {
				return err
			}
			cv, err := e.copy(v)
			if err != nil {
				return err
			}
			out.Content = append(out.Content, ck, cv)
			continue
		}
		// "<<: *a" or "<<: [*a, *b]": the explicit keys win, then the
		// earlier mappings.
		v = deref(v)
		var sources []*yaml.Node
		switch v.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{v}
		case yaml.SequenceNode:
			for _, s := range v.Content {
				sources = append(sources, deref(s))
			}
		}
		for _, s := range sources {
			if s.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: the merge key << wants a mapping or a list of mappings", k.Line)
			}
			cs, err := e.copy(s)
			if err != nil {
				return err
			}
			for j := 0; j < len(cs.Content); j += 2 {
				id := keyID(cs.Content[j])
				if id != "" && (explicit[id] || merged[id]) {
					continue
				}
				merged[id] = true
				out.Content = append(out.Content, cs.Content[j], cs.Content[j+1])
			}
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// keyID identifies a scalar mapping key; "" for other keys, which are never
// considered equal.
func keyID(k *yaml.Node) string {
	if k.Kind != yaml.ScalarNode {
		return ""
	}
	return k.ShortTag() + "\x00" + k.Value
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// topKey is the name of a top-level string key, "" for any other key.
func topKey(k *yaml.Node) string {
	if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!str" {
		return k.Value
	}
	return ""
}

// Key types cloud-init's ssh module knows.
var cloudInitKeyTypes = []string{"rsa", "dsa", "ecdsa", "ed25519"}

// mergeTop merges the user's top-level mapping theirs into ours (see Build).
func mergeTop(ours, theirs *yaml.Node, username string) ([]string, error) {
	var warnings []string
	userHostname := false
	for i := 0; i < len(theirs.Content); i += 2 {
		k, v := theirs.Content[i], theirs.Content[i+1]
		switch topKey(k) {
		case "hostname", "fqdn":
			if isNull(v) {
				continue
			}
			// The user's name wins; cloud-init derives the other one from
			// it, as it would without the builder.
			if !userHostname {
				deleteKey(ours, "hostname")
				deleteKey(ours, "fqdn")
				userHostname = true
			}
			addPair(ours, k.Value, v)
		case "bootcmd":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: bootcmd must be a list of commands, not a %s", v.Line, kindName(v))
			}
			bootcmd := lookup(ours, "bootcmd")
			bootcmd.Content = append(bootcmd.Content, v.Content...)
		case "users":
			if isNull(v) {
				continue
			}
			entries, w, err := userEntries(v, username)
			if err != nil {
				return nil, err
			}
			warnings = append(warnings, w...)
			users := lookup(ours, "users")
			users.Content = append(users.Content, entries...)
		case "ssh_pwauth":
			if isNull(v) || isFalse(v) {
				continue
			}
			return nil, fmt.Errorf("line %d: ssh_pwauth must stay false: the builder keeps SSH password logins off, "+
				"and cloud-init would write this setting into the image's sshd configuration; "+
				"remove it (or change sshd_config in a provisioner if the image really needs password logins)", v.Line)
		case "ssh_genkeytypes":
			if isNull(v) {
				continue
			}
			if err := checkGenKeyTypes(v); err != nil {
				return nil, err
			}
			setValue(ours, "ssh_genkeytypes", v)
		case "power_state":
			return nil, fmt.Errorf("line %d: power_state is not supported: a shutdown or reboot by cloud-init "+
				"would cut the build's SSH session; the builder shuts the VM down itself", k.Line)
		default:
			mergePair(ours, k, v)
		}
	}
	return warnings, nil
}

// userEntries checks the user's users value and returns its entries.
func userEntries(v *yaml.Node, username string) ([]*yaml.Node, []string, error) {
	var entries []*yaml.Node
	switch {
	case v.Kind == yaml.SequenceNode:
		entries = v.Content
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
		// cloud-init accepts "users: default, alice".
		for name := range strings.SplitSeq(v.Value, ",") {
			if name = strings.TrimSpace(name); name != "" {
				n := str(name)
				n.Line = v.Line
				entries = append(entries, n)
			}
		}
	default:
		return nil, nil, fmt.Errorf("line %d: users must be a list (of user names and of mappings with a name key), not a %s", v.Line, kindName(v))
	}
	var warnings []string
	sawDefault := false
	for _, e := range entries {
		var names []string
		switch e.Kind {
		case yaml.ScalarNode:
			for name := range strings.SplitSeq(e.Value, ",") {
				names = append(names, strings.TrimSpace(name))
			}
		case yaml.MappingNode:
			if n := lookup(e, "name"); n != nil && n.Kind == yaml.ScalarNode {
				names = append(names, strings.TrimSpace(n.Value))
			}
		}
		for _, name := range names {
			switch name {
			case "default":
				if !sawDefault {
					sawDefault = true
					warnings = append(warnings, fmt.Sprintf("line %d: users lists \"default\": cloud-init will also create "+
						"the distribution's default user (such as ubuntu or debian), and it will stay in the image", e.Line))
				}
			case username:
				return nil, nil, fmt.Errorf("line %d: users has an entry named %q, the build user; "+
					"the builder creates that user itself: rename your user or choose another build user name", e.Line, username)
			}
		}
	}
	return entries, warnings, nil
}

// isFalse reports whether cloud-init reads n as false (YAML 1.1 booleans and
// the strings its util.is_false accepts).
func isFalse(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch strings.ToLower(n.Value) {
	case "false", "no", "off":
		return true
	}
	return false
}

func checkGenKeyTypes(v *yaml.Node) error {
	bad := fmt.Errorf("line %d: ssh_genkeytypes must be a non-empty list of %s; "+
		"sshd needs a host key for the builder to connect", v.Line, strings.Join(cloudInitKeyTypes, ", "))
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return bad
	}
	for _, t := range v.Content {
		if t.Kind != yaml.ScalarNode || !slices.Contains(cloudInitKeyTypes, t.Value) {
			return bad
		}
	}
	return nil
}

// lookup returns the value of the string key name in mapping m, or nil.
func lookup(m *yaml.Node, name string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if topKey(m.Content[i]) == name {
			return m.Content[i+1]
		}
	}
	return nil
}

// deleteKey removes the string key name and its value from mapping m.
func deleteKey(m *yaml.Node, name string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if topKey(m.Content[i]) == name {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func setValue(m *yaml.Node, name string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if topKey(m.Content[i]) == name {
			m.Content[i+1] = v
			return
		}
	}
	addPair(m, name, v)
}

// mergePair merges the pair k: v into mapping m: lists are concatenated
// (m's first), mappings merged recursively, anything else replaced by v.
func mergePair(m, k, v *yaml.Node) {
	id := keyID(k)
	if id != "" {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if keyID(m.Content[i]) == id {
				m.Content[i+1] = mergeValues(m.Content[i+1], v)
				return
			}
		}
	}
	m.Content = append(m.Content, k, v)
}

func mergeValues(a, b *yaml.Node) *yaml.Node {
	switch {
	case a.Kind == yaml.SequenceNode && b.Kind == yaml.SequenceNode:
		a.Content = append(a.Content, b.Content...)
		return a
	case a.Kind == yaml.MappingNode && b.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(b.Content); i += 2 {
			mergePair(a, b.Content[i], b.Content[i+1])
		}
		return a
	}
	return b
}
