package cidata

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// StripBuildUser prepares a user-data written for the stock qemu builder's
// hand-made seed: it removes the entries of users that create the build user
// (usually with a password) and ssh_pwauth, because the generated seed
// creates that user with the ephemeral key and no password. It returns the
// remaining cloud-config and what it removed. Documents that are not
// #cloud-config are returned unchanged (Build reports them).
func StripBuildUser(userData []byte, username string) ([]byte, []string, error) {
	if checkHeader(userData) != nil {
		return userData, nil, nil
	}
	root, err := parseCloudConfig(userData)
	if err != nil || root == nil {
		return userData, nil, nil
	}
	m := deref(root)
	if m.Kind != yaml.MappingNode {
		return userData, nil, nil
	}
	var removed []string
	kept := m.Content[:0:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Value == "ssh_pwauth":
			removed = append(removed, "ssh_pwauth")
			continue
		case k.Value == "users" && v.Kind == yaml.SequenceNode:
			var users []*yaml.Node
			for _, u := range v.Content {
				if userName(u) == username {
					removed = append(removed, fmt.Sprintf("users entry %q", username))
					continue
				}
				users = append(users, u)
			}
			if len(users) == 0 {
				continue
			}
			v.Content = users
		}
		kept = append(kept, k, v)
	}
	m.Content = kept
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), removed, nil
}

func userName(u *yaml.Node) string {
	u = deref(u)
	switch u.Kind {
	case yaml.ScalarNode:
		return u.Value
	case yaml.MappingNode:
		if n := lookup(u, "name"); n != nil {
			return deref(n).Value
		}
	}
	return ""
}

// ParseMetaData reads a NoCloud meta-data document (a YAML mapping of
// simple values) into a map.
func ParseMetaData(b []byte) (map[string]string, error) {
	var doc map[string]interface{}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("meta-data is not valid YAML: %v", err)
	}
	out := make(map[string]string, len(doc))
	for k, v := range doc {
		switch v.(type) {
		case map[string]interface{}, []interface{}:
			return nil, fmt.Errorf("meta-data key %q: only simple values are supported", k)
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}
