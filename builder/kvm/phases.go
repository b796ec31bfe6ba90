package kvm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// phases records how long each phase of the build took, and which one
// runs now (the VM watcher names it in its faults).
type phases struct {
	names []string
	took  map[string]time.Duration

	mu      sync.Mutex
	current string
}

// phaseWords are the phases in a user's words ("QEMU exited … during boot").
var phaseWords = map[string]string{
	"boot→ssh": "boot",
	"disk":     "the disk preparation",
	"convert":  "the conversion",
}

// now is the phase running now, in words.
func (p *phases) now() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := phaseWords[p.current]; ok {
		return w
	}
	return p.current
}

func (p *phases) enter(name string) {
	p.mu.Lock()
	p.current = name
	p.mu.Unlock()
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
	t.p.enter(t.phase)
	defer func() { t.p.add(t.phase, time.Since(start)) }()
	return t.step.Run(ctx, state)
}

func (t *timed) Cleanup(state multistep.StateBag) { t.step.Cleanup(state) }
