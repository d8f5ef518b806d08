package image

import (
	"io"
	"sync/atomic"
)

// Progress receives what pull and push are doing, one event per change of a
// layer's state and as bytes move. The CLI draws bars (or plain lines) from
// it; the library never prints.
type Progress interface {
	Update(Event)
}

// An Event is the state of one layer (or the image as a whole when ID is "").
type Event struct {
	ID      string // short layer digest, 12 hex digits, as docker prints
	Status  string // one of the Status* constants
	Current int64  // bytes done
	Total   int64  // bytes expected; 0 when unknown
}

// Layer states, worded as docker words them.
const (
	StatusWaiting    = "Waiting"
	StatusExists     = "Already exists"
	StatusDownload   = "Downloading"
	StatusComplete   = "Pull complete"
	StatusPushing    = "Pushing"
	StatusPushed     = "Pushed"
	StatusLayerFound = "Layer already exists"
)

type discardProgress struct{}

func (discardProgress) Update(Event) {}

// progressReader reports the bytes read through it, every 256 KiB or so,
// so the terminal is not flooded.
type progressReader struct {
	r      io.Reader
	p      Progress
	ev     Event
	n      atomic.Int64
	report int64
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	done := pr.n.Add(int64(n))
	if done-pr.report >= 256<<10 || (err == io.EOF && done != pr.report) {
		pr.report = done
		ev := pr.ev
		ev.Current = done
		pr.p.Update(ev)
	}
	return n, err
}
