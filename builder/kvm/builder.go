package kvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/artifactstate"
	"github.com/packer-cloudimg/packer-plugin-cloudimg/internal/ociregistry"
)

// BuilderID is the artifact's BuilderId.
const BuilderID = "packer-cloudimg.kvm"

// Builder is the cloudimg-kvm builder.
type Builder struct {
	config Config
	runner multistep.Runner
}

// ConfigSpec returns the HCL2 spec of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	warnings, err := b.config.Prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	return generatedDataKeys, warnings, nil
}

// generatedDataKeys are the build variables this builder publishes
// (`build.FactsFile` …), beside the SDK's Host, Port, User, SSHPrivateKey….
var generatedDataKeys = []string{"FactsFile", "SourceImageURL", "SourceImageChecksum"}

// Run runs the build: the step chain, one step per file.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	return b.run(ctx, ui, hook, &QemuDriver{QemuBinary: b.config.QemuBinary, QemuImgBinary: b.config.QemuImgBinary})
}

func (b *Builder) run(parent context.Context, ui packersdk.Ui, hook packersdk.Hook, driver Driver) (packersdk.Artifact, error) {
	cfg := &b.config
	started := time.Now()
	// The VM watcher cancels the build with its fault as the cause.
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	defer trackBuild(cancel)()
	p := &phases{}
	// The state bag's keys are listed with each step ("Uses", "Produces").
	// Put here for every step: config, driver, ui; hook (the SDK's
	// StepProvision); phases (the phase now, for stepRun's fault messages);
	// fail_build (cancels the build with a VM fault: stepRun's watcher).
	state := new(multistep.BasicStateBag)
	state.Put("config", cfg)
	state.Put("driver", driver)
	state.Put("hook", hook)
	state.Put("ui", ui)
	state.Put("phases", p)
	state.Put("fail_build", cancel)

	phase := func(name string, steps ...multistep.Step) []multistep.Step {
		out := make([]multistep.Step, len(steps))
		for i, s := range steps {
			out[i] = &timed{phase: name, step: s, p: p}
		}
		return out
	}
	var steps []multistep.Step
	steps = append(steps, &stepPrepare{},
		&communicator.StepSSHKeyGen{CommConf: &cfg.Comm, SSHTemporaryKeyPair: cfg.Comm.SSHTemporaryKeyPair})
	var download multistep.Step = &commonsteps.StepDownload{
		Checksum:    cfg.ISOChecksum,
		Description: "source image",
		ResultKey:   "iso_path",
		Url:         cfg.ISOUrls,
		Extension:   cfg.TargetExtension,
		TargetPath:  cfg.TargetPath,
	}
	if ociregistry.IsReference(cfg.ISOUrls[0]) {
		download = &stepFetchOCI{}
	}
	steps = append(steps, phase("download", download, &stepVerifySource{})...)
	steps = append(steps, phase("disk", &stepOutputDir{}, &stepCreateDisk{}, &stepEFIVars{}, &stepSeed{},
		commonsteps.HTTPServerFromHTTPConfig(&cfg.HTTPConfig))...)
	steps = append(steps, phase("boot→ssh", &stepRun{}, &stepWaitSSH{}, &communicator.StepConnect{
		Config:    &cfg.Comm,
		Host:      func(multistep.StateBag) (string, error) { return cfg.Comm.SSHHost, nil },
		SSHConfig: cfg.Comm.SSHConfigFunc(),
		SSHPort:   func(s multistep.StateBag) (int, error) { return s.Get("ssh_host_port").(int), nil },
	})...)
	steps = append(steps, phase("cloud-init", &stepWaitCloudInit{})...)
	steps = append(steps, phase("provisioning", &stepSSHKeyFile{}, &commonsteps.StepProvision{}, &stepCollectFacts{})...)
	steps = append(steps, phase("shutdown", &stepShutdown{})...)
	steps = append(steps, phase("convert", &stepConvert{})...)

	b.runner = commonsteps.NewRunnerWithPauseFn(steps, cfg.PackerConfig, ui, state)
	b.runner.Run(ctx, state)

	// A fault of the VM is the reason, whatever error the interrupted step
	// made of it (a provisioner's "context canceled" or a lost SSH session),
	// unless Packer cancelled the build first.
	if vm, ok := state.GetOk("vm"); ok && parent.Err() == nil {
		if fault := vm.(VM).Fault(); fault != nil {
			return nil, fault
		}
	}
	if err, ok := state.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, errors.New("build was cancelled")
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok {
		return nil, errors.New("build was halted")
	}
	ui.Say("Phases: " + p.String())

	image := state.Get("image_path").(string)
	a := &Artifact{
		image: image,
		files: []string{image},
		state: map[string]interface{}{
			artifactstate.SourceImageURL:      cfg.ISOUrls[0],
			artifactstate.SourceImageChecksum: cfg.ISOChecksum,
			artifactstate.Format:              cfg.Format,
			artifactstate.StartedAt:           started.UTC().Format(time.RFC3339),
			artifactstate.Firmware:            cfg.Firmware,
			artifactstate.Arch:                cfg.Arch,
		},
	}
	if v, ok := state.GetOk("efivars_path"); ok {
		a.files = append(a.files, v.(string))
	}
	if info, ok := state.GetOk("source_image"); ok {
		a.state[artifactstate.SourceImage] = info
	}
	if facts, ok := state.GetOk("guest_facts"); ok {
		a.state[artifactstate.GuestFacts] = facts
	}
	return a, nil
}

// stepCollectFacts reads the guest facts that a provisioner (the reset
// provisioner) wrote to the host-side FactsFile, before the temporary
// directory goes.
//
// Uses: facts_file (stepPrepare).
// Produces: guest_facts (Run: the artifact's state).
type stepCollectFacts struct{}

func (s *stepCollectFacts) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	facts, err := os.ReadFile(state.Get("facts_file").(string))
	switch {
	case err == nil:
		state.Put("guest_facts", string(facts))
	case !os.IsNotExist(err):
		return halt(state, fmt.Errorf("reading the guest facts: %w", err))
	}
	return multistep.ActionContinue
}

func (s *stepCollectFacts) Cleanup(multistep.StateBag) {}

// running are the builds of this process, for StopBuilds.
var running struct {
	sync.Mutex
	builds map[*int]context.CancelCauseFunc
	wg     sync.WaitGroup
}

// errPackerGone cancels the builds that StopBuilds stops.
var errPackerGone = errors.New("the connection to Packer ended (Packer was killed?): build stopped")

// trackBuild records a running build; the returned func ends the record.
func trackBuild(cancel context.CancelCauseFunc) func() {
	running.Lock()
	defer running.Unlock()
	if running.builds == nil {
		running.builds = map[*int]context.CancelCauseFunc{}
	}
	key := new(int)
	running.builds[key] = cancel
	running.wg.Add(1)
	return func() {
		running.Lock()
		delete(running.builds, key)
		running.Unlock()
		running.wg.Done()
	}
}

// StopBuilds cancels the builds still running in this process and waits up
// to timeout for their steps' cleanup (QEMU stopped, work files removed);
// it reports whether they all ended. The plugin's main calls it when its
// connection to Packer has ended: normally no build runs then, but when
// Packer was killed the process would otherwise exit in the middle of a
// build and leave its work files behind.
func StopBuilds(timeout time.Duration) bool {
	running.Lock()
	for _, cancel := range running.builds {
		cancel(errPackerGone)
	}
	running.Unlock()
	done := make(chan struct{})
	go func() {
		running.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
