package signconfig

import (
	"strings"
	"testing"
)

// The options are checked with their names; no key, no signer.
func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		c    Signing
		want string
	}{
		{Signing{}, ""},
		{Signing{SigningMode: "key"}, "key_file: required"},
		{Signing{SigningMode: "keyless"}, "Fulcio"},
		{Signing{SigningMode: "pgp"}, `signing_mode: "pgp" is not one of none, key`},
		{Signing{SigningMode: "none", KeyFile: "k"}, `signing_mode = "none"`},
		{Signing{KeyFile: "/nonexistent/cosign.key", KeyPassword: "s3cret"}, "key_file:"},
		{Signing{KeyFile: "env://CLOUDIMG_TEST_UNSET_KEY"}, "key_file:"},
	} {
		s, v, err := tc.c.Load()
		switch {
		case tc.want == "" && (err != nil || s != nil || v != nil):
			t.Errorf("%+v: %v %v %v", tc.c, s, v, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err %v, want %q", tc.c, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the password is in the error: %v", err)
		}
	}
}
