package imagesource

import (
	"bytes"
	"html"
	"net/url"
	"sort"
	"strings"
)

// parseListing returns the subdirectory names a web server's directory
// index page links to: every href ending in "/" (Apache's and nginx's
// autoindex, cloud.debian.org's "Index of /images/cloud/bookworm"), reduced
// to its last path element. Query-only links (column sorting), the page
// itself and ".." are dropped. Callers keep only names shaped like serials,
// so the parent directory's link is harmless.
func parseListing(page []byte) []string {
	lower := asciiLower(page)
	seen := map[string]bool{}
	for i := 0; ; {
		j := bytes.Index(lower[i:], []byte("href"))
		if j < 0 {
			break
		}
		i += j + len("href")
		k := skipSpace(lower, i)
		if k >= len(lower) || lower[k] != '=' {
			continue
		}
		k = skipSpace(lower, k+1)
		if k >= len(lower) {
			break
		}
		var value []byte
		if q := page[k]; q == '"' || q == '\'' {
			end := bytes.IndexByte(page[k+1:], q)
			if end < 0 {
				break
			}
			value = page[k+1 : k+1+end]
			i = k + 1 + end + 1
		} else {
			end := k
			for end < len(page) && page[end] != '>' && !isSpace(page[end]) {
				end++
			}
			value = page[k:end]
			i = end
		}
		if name, ok := listedDir(html.UnescapeString(string(value))); ok {
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// listedDir reduces a link to the name of the directory it points to.
func listedDir(href string) (string, bool) {
	if i := strings.IndexAny(href, "?#"); i >= 0 {
		href = href[:i]
	}
	if strings.Contains(href, "://") {
		u, err := url.Parse(href)
		if err != nil {
			return "", false
		}
		href = u.EscapedPath()
	}
	if !strings.HasSuffix(href, "/") {
		return "", false
	}
	href = strings.TrimSuffix(href, "/")
	if i := strings.LastIndexByte(href, '/'); i >= 0 {
		href = href[i+1:]
	}
	name, err := url.PathUnescape(href)
	if err != nil || name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return "", false
	}
	return name, true
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}
