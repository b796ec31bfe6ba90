package imagesource

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// parseSums reads a SHA256SUMS or SHA512SUMS file in the GNU coreutils
// format the distributions publish, one "<hex digest>  <file name>" line per
// file ("<hex> *<name>" in binary mode, as Ubuntu writes them). hexLen is the
// digest's length in hex digits (64 for SHA-256, 128 for SHA-512). It returns
// the lower-case digest of each file name. Blank lines are skipped; any other
// line that is not a checksum line makes the file malformed.
func parseSums(data []byte, hexLen int) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		digest, name, ok := strings.Cut(line, " ")
		if !ok || len(digest) != hexLen || !isHex(digest) {
			return nil, fmt.Errorf("line %d is not a %d-digit checksum line: %q", n, hexLen, truncate(line, 80))
		}
		// GNU: "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
		switch {
		case strings.HasPrefix(name, " "), strings.HasPrefix(name, "*"):
			name = name[1:]
		default:
			return nil, fmt.Errorf("line %d: expected two spaces or \" *\" after the checksum: %q", n, truncate(line, 80))
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: no file name", n)
		}
		digest = strings.ToLower(digest)
		if prev, dup := sums[name]; dup && prev != digest {
			return nil, fmt.Errorf("line %d: %s listed twice with different checksums", n, name)
		}
		sums[name] = digest
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("no checksum lines")
	}
	return sums, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
