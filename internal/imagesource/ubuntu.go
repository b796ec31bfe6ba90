package imagesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// UbuntuStreamPath is where a mirror's simplestreams product file for the
// released cloud images is, relative to its base. Item paths in it are
// relative to the base too.
const UbuntuStreamPath = "streams/v1/com.ubuntu.cloud:released:download.json"

// simplestreams is the part of a simplestreams "products:1.0" file that
// matters here.
type simplestreams struct {
	Format   string               `json:"format"`
	Products map[string]ssProduct `json:"products"`
}

type ssProduct struct {
	Arch     string               `json:"arch"`
	Release  string               `json:"release"`
	Version  string               `json:"version"`
	Versions map[string]ssVersion `json:"versions"`
}

type ssVersion struct {
	Items map[string]ssItem `json:"items"`
}

type ssItem struct {
	FType  string `json:"ftype"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// parseSimplestreams decodes a simplestreams product file.
func parseSimplestreams(data []byte) (*simplestreams, error) {
	var ss simplestreams
	if err := json.Unmarshal(data, &ss); err != nil {
		return nil, fmt.Errorf("not simplestreams JSON: %v", err)
	}
	if ss.Format != "" && ss.Format != "products:1.0" {
		return nil, fmt.Errorf("format %q, not products:1.0", ss.Format)
	}
	if ss.Products == nil {
		return nil, errors.New(`no "products" object`)
	}
	return &ss, nil
}

// product finds the product of a release and arch: by its key
// (com.ubuntu.cloud:server:24.04:amd64) when the release is known, else by
// its "release" field.
func (ss *simplestreams) product(rel release, arch string) (string, *ssProduct, error) {
	if rel.known {
		key := "com.ubuntu.cloud:server:" + rel.version + ":" + arch
		if p, ok := ss.Products[key]; ok {
			return key, &p, nil
		}
	}
	keys := make([]string, 0, len(ss.Products))
	for k := range ss.Products {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var arches []string
	releases := map[string]bool{}
	for _, k := range keys {
		p := ss.Products[k]
		if !strings.HasPrefix(k, "com.ubuntu.cloud:server:") {
			continue
		}
		if p.Release == rel.codename {
			if p.Arch == arch {
				return k, &p, nil
			}
			arches = append(arches, p.Arch)
		}
		if p.Arch == arch && p.Release != "" {
			releases[p.Release] = true
		}
	}
	if len(arches) > 0 {
		return "", nil, fmt.Errorf("no %s image of %s; it has: %s", arch, rel.codename, strings.Join(arches, ", "))
	}
	var names []string
	for r := range releases {
		names = append(names, r)
	}
	sort.Strings(names)
	return "", nil, fmt.Errorf("release %q not found; %s releases in it: %s", rel.codename, arch, strings.Join(names, ", "))
}

// item finds the item of a version with the given ftype, by its "ftype"
// field or, lacking one, its key.
func (v ssVersion) item(ftype string) (string, ssItem, bool) {
	keys := make([]string, 0, len(v.Items))
	for k := range v.Items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		it := v.Items[k]
		if it.FType == ftype || it.FType == "" && k == ftype {
			return k, it, true
		}
	}
	return "", ssItem{}, false
}

// resolveUbuntu reads the simplestreams product file; a mirror without one
// is read like Debian's: <release>/release-<serial>/SHA256SUMS.
func resolveUbuntu(ctx context.Context, src *source, q Query) (*Image, error) {
	rel, err := lookupRelease(Ubuntu, q.Release)
	if err != nil {
		return nil, err
	}
	v, _ := findVariant(Ubuntu, q.Variant)
	data, err := src.get(ctx, UbuntuStreamPath)
	if errors.Is(err, fs.ErrNotExist) {
		img, derr := resolveUbuntuDirs(ctx, src, q, rel, v)
		if derr != nil {
			return nil, fmt.Errorf("no simplestreams index (%v), and from the release directories: %w", err, derr)
		}
		return img, nil
	}
	if err != nil {
		return nil, err
	}
	where := src.url(UbuntuStreamPath)
	ss, err := parseSimplestreams(data)
	if err != nil {
		return nil, fmt.Errorf("malformed index %s: %v", where, err)
	}
	key, p, err := ss.product(rel, q.Arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	var serial, itemKey string
	var it ssItem
	if isCurrent(q.Serial) {
		for s, ver := range p.Versions {
			if !ubuntuSerialRE.MatchString(s) {
				continue
			}
			k, i, ok := ver.item(v.ftype)
			if ok && (serial == "" || compareSerials(s, serial) > 0) {
				serial, itemKey, it = s, k, i
			}
		}
		if serial == "" {
			return nil, fmt.Errorf("%s: no version of %s has a %s image (item ftype %q)", where, key, q.Variant, v.ftype)
		}
	} else {
		ver, ok := p.Versions[q.Serial]
		if !ok {
			serials := make([]string, 0, len(p.Versions))
			for s := range p.Versions {
				serials = append(serials, s)
			}
			return nil, fmt.Errorf("%s: serial %s not found in %s (newest serials: %s)", where, q.Serial, key, newestList(serials, 5))
		}
		serial = q.Serial
		if itemKey, it, ok = ver.item(v.ftype); !ok {
			return nil, fmt.Errorf("%s: %s serial %s has no %s image (item ftype %q)", where, key, serial, q.Variant, v.ftype)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("malformed index %s: %s version %s item %s: %s", where, key, serial, itemKey, fmt.Sprintf(format, args...))
	}
	if err := safeRel(it.Path); err != nil {
		return nil, bad("%v", err)
	}
	if len(it.SHA256) != 64 || !isHex(it.SHA256) {
		return nil, bad("sha256 %q is not 64 hex digits", truncate(it.SHA256, 80))
	}
	return &Image{
		URL:         src.url(it.Path),
		Checksum:    "sha256:" + strings.ToLower(it.SHA256),
		Serial:      serial,
		Name:        path.Base(it.Path),
		ChecksumURL: src.url(path.Dir(it.Path) + "/SHA256SUMS"),
	}, nil
}

// resolveUbuntuDirs reads <release>/release-<serial>/SHA256SUMS, after
// listing <release>/ for the newest serial when asked for the current one.
func resolveUbuntuDirs(ctx context.Context, src *source, q Query, rel release, v variant) (*Image, error) {
	l := sumsLayout{
		dir: rel.codename + "/", prefix: "release-", serialRE: ubuntuSerialRE,
		sums: "SHA256SUMS", algo: "sha256", hexLen: 64,
		// ubuntu-24.04-server-cloudimg-amd64.img, …-amd64-disk-kvm.img
		image: func(string) (string, *regexp.Regexp) {
			if rel.known {
				return "ubuntu-" + rel.version + "-server-cloudimg-" + q.Arch + v.suffix + ".img", nil
			}
			return "", regexp.MustCompile(`^ubuntu-[0-9]+\.[0-9]+-server-cloudimg-` + regexp.QuoteMeta(q.Arch+v.suffix) + `\.img$`)
		},
	}
	return l.resolve(ctx, src, q)
}
