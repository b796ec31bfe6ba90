package kvm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// phases records how long each phase of the build took.
type phases struct {
	names []string
	took  map[string]time.Duration
}

func (p *phases) add(name string, d time.Duration) {
	if p.took == nil {
		p.took = map[string]time.Duration{}
	}
	if _, seen := p.took[name]; !seen {
		p.names = append(p.names, name)
	}
	p.took[name] += d
}

// String is the one-line summary, e.g. "download 0.1s, disk 1.2s, …".
func (p *phases) String() string {
	parts := make([]string, 0, len(p.names))
	var total time.Duration
	for _, n := range p.names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", n, p.took[n].Seconds()))
		total += p.took[n]
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (total %.1fs)", total.Seconds())
}

// timed runs a step and adds its duration to a phase.
type timed struct {
	phase string
	step  multistep.Step
	p     *phases
}

func (t *timed) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	start := time.Now()
	defer func() { t.p.add(t.phase, time.Since(start)) }()
	return t.step.Run(ctx, state)
}

func (t *timed) Cleanup(state multistep.StateBag) { t.step.Cleanup(state) }
