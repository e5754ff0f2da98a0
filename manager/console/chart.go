package console

import (
	"time"

	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
)

// chart is a bar chart drawn as inline SVG by the overview template: one
// bar per hour of the last 24, with every coordinate computed here.
type chart struct {
	W, H, Left, Bottom int
	Bars               []bar
	Ticks              []tick
	Labels             []tick
	Max                int64
	Empty              bool
}

type bar struct {
	X, Y, W, H int
	Title      string
	Class      string // "peer" or "origin"
}

type tick struct {
	X, Y  int
	Label string
}

// hours is the span of the traffic chart.
const hours = 24

// hourly sums the bytes preheat jobs fetched from origins per hour over
// the last 24 hours, attributing each job's bytes to the hour of its last
// update.
type hourly struct {
	start, end time.Time
	sums       [hours]int64
}

func newHourly(now time.Time) *hourly {
	end := now.Truncate(time.Hour).Add(time.Hour)
	return &hourly{start: end.Add(-hours * time.Hour), end: end}
}

func (h *hourly) add(j *store.Job) {
	if j.Type != store.JobPreheat || j.UpdatedAt.Before(h.start) || !j.UpdatedAt.Before(h.end) {
		return
	}
	i := int(j.UpdatedAt.Sub(h.start) / time.Hour)
	for _, b := range j.Progress {
		h.sums[i] += b.Done
	}
}

// preheatChart charts js (see hourly).
func preheatChart(now time.Time, js []store.Job) chart {
	h := newHourly(now)
	for i := range js {
		h.add(&js[i])
	}
	return h.chart()
}

func (h *hourly) chart() chart {
	var top int64
	for _, v := range h.sums {
		top = max(top, v)
	}
	b := newBars(top)
	for i, v := range h.sums {
		b.add(b.Left+i*b.bw+2, b.bw-4, v, "origin", span(h.start, i)+humanBytes(v))
	}
	return b.done(h.start)
}

// bars builds a chart of one slot per hour over hours hours, on a y axis
// from 0 to a round number above the largest value.
type bars struct {
	chart
	scale     int64
	plotH, bw int
}

func newBars(top int64) *bars {
	b := &bars{chart: chart{W: 720, H: 220, Left: 64, Bottom: 28, Max: top, Empty: top == 0}, scale: niceCeil(max(top, 1))}
	b.plotH = b.H - b.Bottom - 12
	b.bw = (b.W - b.Left - 8) / hours
	return b
}

// add draws a bar for v at x, w wide (at least 2 px high when v > 0).
func (b *bars) add(x, w int, v int64, class, title string) {
	h := int(float64(v) / float64(b.scale) * float64(b.plotH))
	if v > 0 && h < 2 {
		h = 2
	}
	b.Bars = append(b.Bars, bar{X: x, Y: 12 + b.plotH - h, W: w, H: h, Class: class, Title: title})
}

// done adds the hour labels (every 4 hours from start) and the y ticks.
func (b *bars) done(start time.Time) chart {
	for i := 0; i < hours; i += 4 {
		b.Labels = append(b.Labels, tick{X: b.Left + i*b.bw + b.bw/2, Y: b.H - 8, Label: start.Add(time.Duration(i) * time.Hour).UTC().Format("15:04")})
	}
	for k := 0; k <= 4; k++ {
		b.Ticks = append(b.Ticks, tick{X: b.Left - 8, Y: 12 + b.plotH - b.plotH*k/4, Label: humanBytes(b.scale * int64(k) / 4)})
	}
	return b.chart
}

// span is the title prefix of hour i from start: "15:00–16:00 UTC: ".
func span(start time.Time, i int) string {
	hour := start.Add(time.Duration(i) * time.Hour)
	return hour.UTC().Format("15:04") + "–" + hour.Add(time.Hour).UTC().Format("15:04") + " UTC: "
}

// niceCeil rounds n up to 1, 2 or 5 times a power of 1024 or 10 (axis top).
func niceCeil(n int64) int64 {
	base := int64(1)
	for base*1024 <= n && base < 1<<50 {
		base *= 1024
	}
	for _, m := range []int64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1024} {
		if base*m >= n {
			return base * m
		}
	}
	return n
}

// trafficChart charts peer vs origin bytes per hour over the last 24 hours
// from the manager's per-minute samples (GET /api/v1/traffic): two bars
// per hour, peer first.
func trafficChart(now time.Time, samples []telemetry.Sample) chart {
	end := now.Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-hours * time.Hour)
	var peer, origin [hours]int64
	for _, s := range samples {
		if s.Time.Before(start) || !s.Time.Before(end) {
			continue
		}
		i := int(s.Time.Sub(start) / time.Hour)
		peer[i] += int64(min(s.PeerBytes, 1<<62))
		origin[i] += int64(min(s.SourceBytes, 1<<62))
	}
	var top int64
	for i := range hours {
		top = max(top, peer[i], origin[i])
	}
	b := newBars(top)
	half := (b.bw - 4) / 2
	for i := range hours {
		x := b.Left + i*b.bw + 2
		b.add(x, half, peer[i], "peer", span(start, i)+humanBytes(peer[i])+" from peers")
		b.add(x+half, half, origin[i], "origin", span(start, i)+humanBytes(origin[i])+" from origins")
	}
	return b.done(start)
}
