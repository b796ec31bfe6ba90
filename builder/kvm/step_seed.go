package kvm

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/cidata"
)

// stepSeed writes the cloud-init NoCloud seed ISO (label cidata) that creates
// the build user with the ephemeral key.
//
// Uses: config (the seed input Prepare derived), ui, temp_dir (stepPrepare).
// Produces: mac (stepRun), seed_path (stepRun).
type stepSeed struct{}

func (s *stepSeed) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	cfg := state.Get("config").(*Config)
	ui := state.Get("ui").(packersdk.Ui)

	mac := cfg.MACAddress
	if mac == "" {
		mac = randomMAC()
	}
	mac, _ = parseMAC(mac)
	state.Put("mac", mac)

	// The options were turned into the seed's input once, in Prepare; the
	// build adds only what is new each time.
	sc := cfg.seed.withBuild(string(cfg.Comm.SSHPublicKey), cidata.NewInstanceID(), mac)
	seed, err := cidata.Build(sc)
	if err != nil {
		return halt(state, err)
	}
	for _, w := range append(slices.Clone(cfg.seed.notes), seed.Warnings...) {
		ui.Say("Warning: " + w)
	}
	path := filepath.Join(state.Get("temp_dir").(string), "cidata.iso")
	if err := seed.WriteISO(path); err != nil {
		return halt(state, fmt.Errorf("writing the cidata seed: %w", err))
	}
	state.Put("seed_path", path)
	ui.Say(fmt.Sprintf("Created the cidata seed (instance-id %s, user %s, NIC %s)", sc.InstanceID, sc.Username, mac))
	return multistep.ActionContinue
}

func (s *stepSeed) Cleanup(multistep.StateBag) {}

// seedInput is the seed's input as the options give it, derived once by
// Prepare (deriveSeed) and only read afterwards: the seed configuration
// without the parts each build chooses (key, instance-id, MAC), and the
// notes on what was dropped from a stock-builder seed (cd_content/cd_files),
// which stepSeed prints once per build.
type seedInput struct {
	base  cidata.Config
	notes []string
}

// withBuild returns the seed configuration for one build: the derived input
// plus the build's public key (authorized_keys line), instance-id and NIC MAC.
// The receiver is not modified.
func (s seedInput) withBuild(authorizedKey, instanceID, mac string) cidata.Config {
	sc := s.base
	sc.MetaData = maps.Clone(s.base.MetaData)
	sc.SSHGenKeyTypes = slices.Clone(s.base.SSHGenKeyTypes)
	sc.AuthorizedKey, sc.InstanceID, sc.MAC = authorizedKey, instanceID, mac
	return sc
}

// deriveSeed assembles the seed's input from the options (and from the stock
// builder's cd_content/cd_files when a template still has them). It reads the
// files the options name and does not modify c; errors name the option.
func deriveSeed(c *Config) (seedInput, error) {
	sc := cidata.Config{
		Hostname:       c.Hostname,
		Username:       c.Comm.SSHUsername,
		MetaData:       maps.Clone(c.MetaData),
		SSHGenKeyTypes: slices.Clone(c.SSHHostKeyTypes),
	}
	var err error
	if sc.UserData, sc.UserDataName, err = inlineOrFile(c.UserData, "user_data", c.UserDataFile, "user_data_file"); err != nil {
		return seedInput{}, err
	}
	if sc.NetworkConfig, sc.NetworkConfigName, err = inlineOrFile(c.NetworkConfig, "network_config", c.NetworkConfigFile, "network_config_file"); err != nil {
		return seedInput{}, err
	}
	if c.VendorData != "" {
		sc.VendorData = []byte(c.VendorData)
	}
	var notes []string
	if len(c.CDContent) > 0 || len(c.CDFiles) > 0 {
		if notes, err = legacySeed(c.CDContent, c.CDFiles, &sc); err != nil {
			return seedInput{}, err
		}
	}
	return seedInput{base: sc, notes: notes}, nil
}

// inlineOrFile returns the content of an option given inline or as a file
// (Prepare makes sure at most one is set), nil when neither, and the name to
// use in error messages.
func inlineOrFile(inline, inlineOpt, file, fileOpt string) ([]byte, string, error) {
	switch {
	case inline != "":
		return []byte(inline), inlineOpt, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", fileOpt, err)
		}
		return b, fileOpt + " (" + file + ")", nil
	}
	return nil, "", nil
}

// legacySeed feeds the stock builder's cidata files (cd_content, cd_files)
// into sc and returns a note for each thing it dropped from them.
func legacySeed(cdContent map[string]string, cdFiles []string, sc *cidata.Config) ([]string, error) {
	var notes []string
	files := map[string][]byte{}
	origin := map[string]string{}
	for name, content := range cdContent {
		files[filepath.Base(name)] = []byte(content)
		origin[filepath.Base(name)] = "cd_content[\"" + name + "\"]"
	}
	for _, f := range cdFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cd_files: %w", err)
		}
		files[filepath.Base(f)] = b
		origin[filepath.Base(f)] = "cd_files (" + f + ")"
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		switch name {
		case cidata.FileUserData:
			ud, removed, err := cidata.StripBuildUser(b, sc.Username)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", origin[name], err)
			}
			sc.UserData, sc.UserDataName = ud, origin[name]
			for _, r := range removed {
				notes = append(notes, fmt.Sprintf("%s: dropped %s (the builder creates user %q with an ephemeral key and no password)", origin[name], r, sc.Username))
			}
		case cidata.FileNetworkConfig:
			sc.NetworkConfig, sc.NetworkConfigName = b, origin[name]
		case cidata.FileVendorData:
			sc.VendorData = b
		case cidata.FileMetaData:
			// instance-id stays the builder's: the build's instance must be
			// new each time. local-hostname is dropped: the hostname goes
			// into user-data (see cidata.Build). Other simple keys are kept.
			md, err := cidata.ParseMetaData(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", origin[name], err)
			}
			for k, v := range md {
				if k == "instance-id" || k == "local-hostname" {
					continue
				}
				if sc.MetaData == nil {
					sc.MetaData = map[string]string{}
				}
				if _, set := sc.MetaData[k]; !set {
					sc.MetaData[k] = v
				}
			}
		default:
			return nil, fmt.Errorf("%s: %q is not a cloud-init seed file (user-data, meta-data, network-config, vendor-data); cloudimg-kvm builds no other CD", origin[name], name)
		}
	}
	return notes, nil
}
