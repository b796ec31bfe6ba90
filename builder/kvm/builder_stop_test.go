package kvm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// When the connection to Packer ends with builds still running, they are
// cancelled and StopBuilds waits for their cleanup; a build that does not
// end in time does not hold the plugin forever.
func TestStopBuilds(t *testing.T) {
	if !StopBuilds(time.Second) {
		t.Fatal("StopBuilds waited with no build running")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	untrack := trackBuild(cancel)
	cleaned := make(chan struct{})
	go func() {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // the steps' cleanup
		close(cleaned)
		untrack()
	}()
	if !StopBuilds(10 * time.Second) {
		t.Fatal("StopBuilds gave up on a build that ended")
	}
	select {
	case <-cleaned:
	default:
		t.Fatal("StopBuilds returned before the build's cleanup")
	}
	if !errors.Is(context.Cause(ctx), errPackerGone) {
		t.Errorf("cause %v", context.Cause(ctx))
	}

	_, stuck := context.WithCancelCause(context.Background())
	untrack = trackBuild(stuck)
	defer untrack()
	if StopBuilds(50 * time.Millisecond) {
		t.Error("StopBuilds reported a stuck build as ended")
	}
}
