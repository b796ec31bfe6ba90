package kvm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/imagemeta"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/signing"
)

// bundleSuffix ends the name of the Sigstore bundle that signs an image.
const bundleSuffix = ".sigstore.json"

// maxBundle bounds a bundle read: 16 MiB.
const maxBundle = 16 << 20

// errNoBundle is wrapped when a URL has no bundle beside it.
var errNoBundle = errors.New("not found")

// stepVerifySource checks, with verify_key, that the downloaded source
// image (state "iso_path") is signed by one of the keys: the bundle beside
// its URL must verify against the SHA-256 of the file the build uses.
// Without verify_key it does nothing.
type stepVerifySource struct {
	// client fetches http(s) bundles; nil: one with the environment's proxy.
	client *http.Client
}

func (s *stepVerifySource) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	if len(cfg.verifyKeys) == 0 || ociregistry.IsReference(cfg.ISOUrls[0]) {
		// An oci:// source is verified in the registry by stepFetchOCI.
		return multistep.ActionContinue
	}
	ui := state.Get("ui").(packersdk.Ui)
	path := state.Get("iso_path").(string)
	if err := s.verify(ctx, ui, cfg, path); err != nil {
		state.Put("error", err)
		ui.Error(err.Error())
		return multistep.ActionHalt
	}
	return multistep.ActionContinue
}

func (s *stepVerifySource) verify(ctx context.Context, ui packersdk.Ui, cfg *Config, path string) error {
	ui.Say("Verifying the source image's signature (verify_key)...")
	sums, _, err := imagemeta.HashFileContext(ctx, path, []string{"sha256"})
	if err != nil {
		return fmt.Errorf("verify_key: hashing the source image %s: %w", path, err)
	}
	digest, _ := hex.DecodeString(sums["sha256"])
	image := redact(cfg.ISOUrls[0])
	refuse := func(err error) error {
		return fmt.Errorf("verify_key: source image %s (sha256:%s) refused: %w", image, sums["sha256"], err)
	}
	var tried []string
	for _, u := range cfg.ISOUrls {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		b, where, err := s.fetchBundle(fctx, u)
		cancel()
		if errors.Is(err, errNoBundle) {
			tried = append(tried, where)
			continue
		}
		if err != nil {
			return refuse(err)
		}
		v, err := signing.VerifyBlob(b, digest, cfg.verifyKeys)
		if err != nil {
			return refuse(fmt.Errorf("%s: %w", where, err))
		}
		ui.Say(fmt.Sprintf("Source image signed by the key %s (%s)", v.Key, where))
		return nil
	}
	keys := make([]string, len(cfg.verifyKeys))
	for i, k := range cfg.verifyKeys {
		keys[i] = k.String()
	}
	return refuse(fmt.Errorf("it is not signed: no %s (keys: %s)", strings.Join(tried, ", no "), strings.Join(keys, ", ")))
}

// fetchBundle reads the bundle beside the image at u (an http(s) or file
// URL, or a path) and returns it with where it was looked for (credentials
// removed). errNoBundle: it does not exist.
func (s *stepVerifySource) fetchBundle(ctx context.Context, u string) ([]byte, string, error) {
	p, err := url.Parse(u)
	if err == nil && (p.Scheme == "http" || p.Scheme == "https") {
		p.Path += bundleSuffix
		p.RawPath = ""
		where := redact(p.String())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.String(), nil)
		if err != nil {
			return nil, where, err
		}
		client := s.client
		if client == nil {
			client = &http.Client{Transport: http.DefaultTransport}
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, where, fmt.Errorf("%s: %w", where, scrub(err))
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			return nil, where, errNoBundle
		}
		if resp.StatusCode != http.StatusOK {
			return nil, where, fmt.Errorf("%s: %s", where, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBundle))
		if err != nil {
			return nil, where, fmt.Errorf("%s: %w", where, err)
		}
		return b, where, nil
	}
	file := u
	if err == nil && p.Scheme == "file" {
		file = filepath.FromSlash(p.Path)
	}
	file += bundleSuffix
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, file, errNoBundle
	}
	return b, file, err
}

func (s *stepVerifySource) Cleanup(multistep.StateBag) {}

// redact removes the password of a URL's user information.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

// scrub keeps the URL, which may hold credentials, out of an http error
// (the caller names the URL redacted).
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
