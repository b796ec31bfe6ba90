package imagesource

import (
	"context"
	"fmt"
	"regexp"
)

// resolveDebian reads <base>/<release>/<serial>/SHA512SUMS, after listing
// <base>/<release>/ for the newest serial when asked for the current one.
// The moving latest/ alias is never read.
func resolveDebian(ctx context.Context, src *source, q Query) (*Image, error) {
	rel, err := lookupRelease(Debian, q.Release)
	if err != nil {
		return nil, err
	}
	bp := ""
	if rel.backports {
		bp = "-backports"
	}
	l := sumsLayout{
		dir: rel.dir() + "/", serialRE: debianSerialRE,
		sums: "SHA512SUMS", algo: "sha512", hexLen: 128,
		// debian-12-genericcloud-amd64-20241004-1894.qcow2,
		// debian-12-backports-generic-arm64-20241004-1894.qcow2
		image: func(serial string) (string, *regexp.Regexp) {
			if rel.known {
				return fmt.Sprintf("debian-%s%s-%s-%s-%s.qcow2", rel.version, bp, q.Variant, q.Arch, serial), nil
			}
			return "", regexp.MustCompile(`^debian-[0-9]+` + regexp.QuoteMeta(bp+"-"+q.Variant+"-"+q.Arch+"-"+serial) + `\.qcow2$`)
		},
	}
	return l.resolve(ctx, src, q)
}
