package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/image"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// hasWidth reports whether w is a terminal with a known width (TIOCGWINSZ),
// where progress bars can redraw themselves. A pty nobody sized has none.
func hasWidth(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(w) {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

// progressSink is where pull and push report: bars on a terminal, a plain
// line per change of a layer's state otherwise, nothing with -q.
type progressSink interface {
	image.Progress
	Wait() // let the last bars draw before the summary is printed
}

func newProgress(w io.Writer, quiet bool) progressSink {
	switch {
	case quiet:
		return quietProgress{}
	case hasWidth(w):
		return &barProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(50)), bars: map[string]*layerBar{}}
	}
	return &lineProgress{w: w, last: map[string]string{}}
}

type quietProgress struct{}

func (quietProgress) Update(image.Event) {}
func (quietProgress) Wait()              {}

// lineProgress prints "<layer>: <status>" once per change of status, as
// docker does when its output is not a terminal.
type lineProgress struct {
	mu   sync.Mutex
	w    io.Writer
	last map[string]string
}

func (l *lineProgress) Update(e image.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last[e.ID] == e.Status {
		return
	}
	l.last[e.ID] = e.Status
	fmt.Fprintf(l.w, "%s: %s\n", e.ID, e.Status)
}

func (l *lineProgress) Wait() {}

// barProgress draws one mpb bar per layer: "<id> <status> [=====>   ] 3.1MiB / 5.0MiB".
type barProgress struct {
	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*layerBar
}

type layerBar struct {
	bar    *mpb.Bar
	status string
	mu     sync.Mutex
}

func (b *barProgress) Update(e image.Event) {
	b.mu.Lock()
	lb, ok := b.bars[e.ID]
	if !ok {
		lb = &layerBar{status: e.Status}
		status := func(decor.Statistics) string {
			lb.mu.Lock()
			defer lb.mu.Unlock()
			return lb.status
		}
		// Total 0 at creation: the bar must not complete by itself when the
		// download reaches 100%, only when the layer is unpacked and stored.
		bar, err := b.p.Add(0, mpb.BarStyle().Build(),
			mpb.PrependDecorators(decor.Name(e.ID+" "), decor.Any(status, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")))
		if err != nil { // the bars are already shut down: nothing to draw on
			b.mu.Unlock()
			return
		}
		lb.bar = bar
		b.bars[e.ID] = lb
	}
	b.mu.Unlock()
	lb.mu.Lock()
	lb.status = e.Status
	lb.mu.Unlock()
	if e.Total > 0 {
		lb.bar.SetTotal(e.Total, false)
	}
	lb.bar.SetCurrent(e.Current)
	switch e.Status {
	case image.StatusComplete, image.StatusExists, image.StatusPushed, image.StatusLayerFound:
		lb.bar.SetTotal(-1, true) // done: fill the bar and stop redrawing it
	}
}

func (b *barProgress) Wait() {
	b.mu.Lock()
	for _, lb := range b.bars {
		if !lb.bar.Completed() {
			lb.bar.Abort(false)
		}
	}
	b.mu.Unlock()
	b.p.Wait()
}
