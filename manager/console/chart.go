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
	c := chart{W: 720, H: 220, Left: 64, Bottom: 28}
	start, sums := h.start, h.sums
	for _, s := range sums {
		c.Max = max(c.Max, s)
	}
	c.Empty = c.Max == 0
	scale := niceCeil(max(c.Max, 1))
	plotW, plotH := c.W-c.Left-8, c.H-c.Bottom-12
	bw := plotW / hours
	for i, s := range sums {
		h := int(float64(s) / float64(scale) * float64(plotH))
		if s > 0 && h < 2 {
			h = 2
		}
		hour := start.Add(time.Duration(i) * time.Hour)
		c.Bars = append(c.Bars, bar{X: c.Left + i*bw + 2, Y: 12 + plotH - h, W: bw - 4, H: h, Class: "origin",
			Title: hour.UTC().Format("15:04") + "–" + hour.Add(time.Hour).UTC().Format("15:04") + " UTC: " + humanBytes(s)})
		if i%4 == 0 {
			c.Labels = append(c.Labels, tick{X: c.Left + i*bw + bw/2, Y: c.H - 8, Label: hour.UTC().Format("15:04")})
		}
	}
	for k := 0; k <= 4; k++ {
		v := scale * int64(k) / 4
		c.Ticks = append(c.Ticks, tick{X: c.Left - 8, Y: 12 + plotH - plotH*k/4, Label: humanBytes(v)})
	}
	return c
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
	c := chart{W: 720, H: 220, Left: 64, Bottom: 28}
	for i := range hours {
		c.Max = max(c.Max, peer[i], origin[i])
	}
	c.Empty = c.Max == 0
	scale := niceCeil(max(c.Max, 1))
	plotW, plotH := c.W-c.Left-8, c.H-c.Bottom-12
	bw := plotW / hours
	half := (bw - 4) / 2
	height := func(v int64) int {
		h := int(float64(v) / float64(scale) * float64(plotH))
		if v > 0 && h < 2 {
			h = 2
		}
		return h
	}
	for i := range hours {
		hour := start.Add(time.Duration(i) * time.Hour)
		span := hour.UTC().Format("15:04") + "–" + hour.Add(time.Hour).UTC().Format("15:04") + " UTC: "
		x := c.Left + i*bw + 2
		hp, ho := height(peer[i]), height(origin[i])
		c.Bars = append(c.Bars,
			bar{X: x, Y: 12 + plotH - hp, W: half, H: hp, Class: "peer", Title: span + humanBytes(peer[i]) + " from peers"},
			bar{X: x + half, Y: 12 + plotH - ho, W: half, H: ho, Class: "origin", Title: span + humanBytes(origin[i]) + " from origins"})
		if i%4 == 0 {
			c.Labels = append(c.Labels, tick{X: c.Left + i*bw + bw/2, Y: c.H - 8, Label: hour.UTC().Format("15:04")})
		}
	}
	for k := 0; k <= 4; k++ {
		v := scale * int64(k) / 4
		c.Ticks = append(c.Ticks, tick{X: c.Left - 8, Y: 12 + plotH - plotH*k/4, Label: humanBytes(v)})
	}
	return c
}
