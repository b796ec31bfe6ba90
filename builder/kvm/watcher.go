package kvm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"
)

// The VM watcher: one goroutine owns QEMU's QMP connection from the moment
// QEMU is up until it exits. It turns QEMU's events (judged by the pure
// classifier in fault.go) into a fault, the cause
// that fails the build: the builder cancels the running step's context with
// it and stops QEMU, which also cuts the SSH session of a provisioner
// waiting on a command. Commands (the power-off) go through the same
// connection.
//
// QMP is a line of JSON per message: a greeting, then replies (matched by
// "id") and asynchronous events. digitalocean/go-qemu's qmp package was
// considered and not used: its reader blocks on an unbuffered event channel
// while a command waits for its reply (a second event during a command
// deadlocks it), events that arrive with the capabilities reply are lost to
// a json.Decoder's buffer, commands take no timeout, and it is only served
// as a pseudo-version that brings go-libvirt along.

// qmpMessage is one message from QEMU's QMP server.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	ID     *int64          `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// FaultWatch is what the watcher needs to know of the build.
type FaultWatch struct {
	Disk    string        // the build disk (its filesystem is named when it fills up)
	Serial  string        // the serial log, whose tail goes with some faults
	Phase   func() string // the build phase now, in words
	OnFault func(error)   // called once, on the first fault, on a goroutine of its own
}

// qmpTimeout bounds the handshake and each command.
const qmpTimeout = 10 * time.Second

type qmpRequest struct {
	command string
	reply   chan qmpResult
}

type qmpResult struct {
	ret json.RawMessage
	err error
}

// vmWatcher owns a QMP connection; see the comment at the top of the file.
type vmWatcher struct {
	conn     net.Conn
	r        *bufio.Reader
	exited   <-chan struct{}       // closed when QEMU has exited
	exitWhat func() (string, bool) // how QEMU exited, in words; whether by a signal
	spec     FaultWatch
	reqs     chan qmpRequest
	done     chan struct{} // closed when the watcher has ended

	mu       sync.Mutex
	expected string // why QEMU may stop now ("" while it must not)
	faulted  *vmFault
	shutdown string // the reason of QEMU's last SHUTDOWN event
}

// watchQMP does the QMP handshake on conn and starts the watcher.
func watchQMP(conn net.Conn, exited <-chan struct{}, exitWhat func() (string, bool), spec FaultWatch) (*vmWatcher, error) {
	w := &vmWatcher{conn: conn, r: bufio.NewReader(conn), exited: exited, exitWhat: exitWhat, spec: spec,
		reqs: make(chan qmpRequest), done: make(chan struct{})}
	if w.spec.Phase == nil {
		w.spec.Phase = func() string { return "" }
	}
	_ = conn.SetDeadline(time.Now().Add(qmpTimeout))
	m, err := w.readMessage()
	if err != nil {
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	if m.QMP == nil {
		return nil, fmt.Errorf("QMP: no greeting")
	}
	if _, err := fmt.Fprintf(conn, "{\"execute\":\"qmp_capabilities\",\"id\":0}\n"); err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	// Events may come before the reply; keep them for the watcher.
	var early []qmpMessage
	for {
		m, err := w.readMessage()
		if err != nil {
			return nil, fmt.Errorf("QMP capabilities: %w", err)
		}
		if m.Event != "" {
			early = append(early, m)
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("QMP capabilities: %s", m.Error.Desc)
		}
		break
	}
	_ = conn.SetDeadline(time.Time{})
	go w.run(early)
	return w, nil
}

func (w *vmWatcher) readMessage() (qmpMessage, error) {
	var m qmpMessage
	line, err := w.r.ReadBytes('\n')
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("QMP: %w: %q", err, line)
	}
	return m, nil
}

// expect tells the watcher that QEMU may stop now, and why.
func (w *vmWatcher) expect(why string) {
	w.mu.Lock()
	if w.expected == "" {
		w.expected = why
	}
	w.mu.Unlock()
}

// result waits up to timeout for the watcher to end (QEMU has exited and
// its last events are read) and returns its fault, if any.
func (w *vmWatcher) result(timeout time.Duration) error {
	if timeout > 0 {
		select {
		case <-w.done:
		case <-time.After(timeout):
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.faulted == nil {
		return nil
	}
	return w.faulted
}

// execute runs a QMP command through the watcher's connection.
func (w *vmWatcher) execute(command string) (json.RawMessage, error) {
	req := qmpRequest{command: command, reply: make(chan qmpResult, 1)}
	select {
	case w.reqs <- req:
	case <-w.done:
		return nil, errors.New("QMP: QEMU has exited")
	}
	select {
	case r := <-req.reply:
		return r.ret, r.err
	case <-time.After(qmpTimeout):
		return nil, fmt.Errorf("QMP: no reply to %s within %s", command, qmpTimeout)
	}
}

// run is the watcher's goroutine: it alone reads and writes the connection.
func (w *vmWatcher) run(early []qmpMessage) {
	defer close(w.done)
	defer w.conn.Close()

	msgs := make(chan qmpMessage, 16)
	go func() {
		defer close(msgs)
		for {
			m, err := w.readMessage()
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-w.done:
				return
			}
		}
	}()

	pending := map[int64]func(qmpMessage){}
	var lastID int64
	send := func(command string, cb func(qmpMessage)) error {
		lastID++
		_ = w.conn.SetWriteDeadline(time.Now().Add(qmpTimeout))
		if _, err := fmt.Fprintf(w.conn, "{\"execute\":%q,\"id\":%d}\n", command, lastID); err != nil {
			return fmt.Errorf("QMP: %w", err)
		}
		pending[lastID] = cb
		return nil
	}
	handle := func(m qmpMessage) {
		switch {
		case m.Event != "":
			w.event(m, send)
		case m.ID != nil:
			if cb, ok := pending[*m.ID]; ok {
				delete(pending, *m.ID)
				cb(m)
			}
		}
	}
	closed := func() {
		for id, cb := range pending {
			delete(pending, id)
			cb(qmpMessage{Error: &struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			}{Desc: "the QMP connection closed"}})
		}
	}
	for _, m := range early {
		handle(m)
	}
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				closed()
				continue
			}
			handle(m)
		case req := <-w.reqs:
			cb := func(m qmpMessage) {
				if m.Error != nil {
					req.reply <- qmpResult{err: fmt.Errorf("QMP %s: %s", req.command, m.Error.Desc)}
					return
				}
				req.reply <- qmpResult{ret: m.Return}
			}
			if msgs == nil {
				req.reply <- qmpResult{err: errors.New("QMP: the connection closed")}
				continue
			}
			if err := send(req.command, cb); err != nil {
				req.reply <- qmpResult{err: err}
			}
		case <-w.exited:
			// QEMU's last events come before its exit: read them first.
			if msgs != nil {
				deadline := time.After(2 * time.Second)
			drain:
				for {
					select {
					case m, ok := <-msgs:
						if !ok {
							break drain
						}
						handle(m)
					case <-deadline:
						break drain
					}
				}
			}
			closed()
			// The serial console says nothing of a signal from the host.
			what, signaled := w.exitWhat()
			w.mu.Lock()
			if w.shutdown != "" {
				what += " after " + w.shutdown
			}
			w.mu.Unlock()
			w.fault(what, !signaled)
			return
		}
	}
}

// event applies the verdict of one QMP event (see classifyEvent); a STOP is
// judged by the run state it asks QEMU for.
func (w *vmWatcher) event(m qmpMessage, send func(string, func(qmpMessage)) error) {
	v := classifyEvent(m.Event, m.Data)
	if v.shutdown != "" {
		w.mu.Lock()
		w.shutdown = v.shutdown
		w.mu.Unlock()
	}
	if v.queryStatus {
		_ = send("query-status", func(r qmpMessage) {
			var st struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal(r.Return, &st)
			w.apply(classifyStatus(st.Status))
		})
		return
	}
	w.apply(v)
}

// apply turns a verdict into the build's fault, if it is one.
func (w *vmWatcher) apply(v verdict) {
	switch {
	case v.diskFull != "":
		w.fault(w.diskFull(v.diskFull), false)
	case v.fault != "":
		w.fault(v.fault, v.serial)
	}
}

// diskFull describes a write error for lack of space on the build disk's
// filesystem.
func (w *vmWatcher) diskFull(action string) string {
	dir, err := filepath.Abs(filepath.Dir(w.spec.Disk))
	if err != nil {
		dir = filepath.Dir(w.spec.Disk)
	}
	free := "space unknown"
	if n, ok := freeSpace(dir); ok {
		free = humanBytes(n) + " free"
	}
	did := "QEMU paused the guest on a write error"
	if action == "report" {
		did = "the guest got write errors"
	}
	return fmt.Sprintf("the filesystem holding %s is full (%s): %s", dir, free, did)
}

// fault reports the first fault, unless QEMU was expected to stop.
func (w *vmWatcher) fault(what string, serial bool) {
	f := &vmFault{What: what, Phase: w.spec.Phase()}
	if serial && w.spec.Serial != "" {
		f.Serial = w.spec.Serial
		f.Tail = tailFile(w.spec.Serial, 20)
	}
	w.mu.Lock()
	if w.faulted != nil || w.expected != "" {
		w.mu.Unlock()
		return
	}
	w.faulted = f
	w.mu.Unlock()
	if w.spec.OnFault != nil {
		go w.spec.OnFault(f)
	}
}
