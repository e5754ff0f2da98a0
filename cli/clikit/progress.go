package clikit

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Progress draws one transfer bar on a terminal, or nothing.
type Progress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

// NewProgress returns a bar for total bytes (≤ 0: unknown) labelled name,
// drawn on w when enabled (pass IsTerminal(os.Stderr) && format != json).
func NewProgress(w io.Writer, enabled bool, name string, total int64) *Progress {
	if !enabled {
		return &Progress{}
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	bar := p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(name+" "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f"), decor.Name(" "), decor.Percentage()),
	)
	return &Progress{p: p, bar: bar}
}

// Reader wraps r so reads advance the bar.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p.bar == nil {
		return r
	}
	return p.bar.ProxyReader(r)
}

// Done completes the bar (ok) or aborts it, and waits for the last render.
func (p *Progress) Done(ok bool) {
	if p.bar == nil {
		return
	}
	if ok {
		p.bar.SetTotal(-1, true)
	} else {
		p.bar.Abort(false)
	}
	p.p.Wait()
}
