package clikit

import (
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// ShowProgress reports whether a CLI should draw progress bars on f
// (usually os.Stderr): only on a terminal, and never when the output is
// JSON for a script.
func ShowProgress(f *os.File, format string) bool {
	return format != FormatJSON && IsTerminal(f)
}

// Progress is one transfer's progress bar, or nothing when disabled. All
// methods are safe on a disabled Progress and on a nil *Progress, so
// callers need not care which they hold.
//
// Typical use:
//
//	bar := clikit.NewProgress(os.Stderr, clikit.ShowProgress(os.Stderr, output), "dfget", size)
//	defer bar.Abort() // no-op once Wait ran
//	_, err := io.Copy(dst, bar.Reader(src))
//	if err != nil { return err }
//	bar.Wait()
type Progress struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	once sync.Once
}

// NewProgress returns a bar labelled name for total bytes, drawn on w when
// enabled (whatever w is: the caller decides, usually with
// [ShowProgress]). A total ≤ 0 means unknown: a spinner with a byte
// counter.
func NewProgress(w io.Writer, enabled bool, name string, total int64) *Progress {
	if !enabled {
		return &Progress{}
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithAutoRefresh())
	var bar *mpb.Bar
	if total > 0 {
		bar = p.New(total, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(name+" "), decor.CountersKibiByte("% .1f / % .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f"), decor.Name(" "), decor.Percentage()),
		)
	} else {
		bar = p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name(name+" "), decor.CurrentKibiByte("% .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f")),
		)
	}
	return &Progress{p: p, bar: bar}
}

func (p *Progress) enabled() bool { return p != nil && p.bar != nil }

// Reader returns r, counting what is read from it on the bar.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if !p.enabled() {
		return r
	}
	return p.bar.ProxyReader(r)
}

// Writer returns w, counting what is written to it on the bar.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if !p.enabled() {
		return w
	}
	return p.bar.ProxyWriter(w)
}

// Wait marks the transfer complete at the bytes counted so far, draws the
// final state and returns once the bar is off the screen's live area.
// Only the first of Wait, Abort and Done has an effect.
func (p *Progress) Wait() { p.finish(true) }

// Abort stops the bar where it is (the transfer failed) and waits for the
// last render. Only the first of Wait, Abort and Done has an effect.
func (p *Progress) Abort() { p.finish(false) }

// Done is Wait when ok, else Abort.
func (p *Progress) Done(ok bool) { p.finish(ok) }

func (p *Progress) finish(ok bool) {
	if !p.enabled() {
		return
	}
	p.once.Do(func() {
		if ok {
			p.bar.SetTotal(-1, true)
		} else {
			p.bar.Abort(false)
		}
		p.p.Wait()
	})
}
