package testnet

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"time"
)

// Chart colours: P2P bars, baseline bars, the Kumar–Ross bound, grid.
var (
	chartP2P      = color.RGBA{0x2e, 0x8b, 0x57, 0xff}
	chartBaseline = color.RGBA{0xa0, 0xa0, 0xa0, 0xff}
	chartBound    = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	chartGrid     = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	chartKilled   = color.RGBA{0x33, 0x33, 0x33, 0xff}
)

// WriteChart draws a swarm run as a PNG: one row per host, a bar from the
// host's start to its completion (green; killed hosts dark), the same hosts
// without P2P below them when baseline is given (grey), a red line at the
// Kumar–Ross bound and a vertical grid line every 10 s (every minute past
// 5 min). The time axis spans the slowest run.
func WriteChart(w io.Writer, r SwarmResult, baseline *SwarmResult) error {
	const width, rowH, gap, margin = 1000, 14, 4, 20
	rows := len(r.Completion)
	if baseline != nil {
		rows += len(baseline.Completion) + 1
	}
	height := margin*2 + rows*(rowH+gap)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), color.White)
	span := r.Spec.Stagger*time.Duration(len(r.Completion)) + maxDur(r.Completion)
	if baseline != nil {
		span = max(span, maxDur(baseline.Completion))
	}
	span = max(span, r.Bound) + time.Second
	x := func(d time.Duration) int { return margin + int(float64(width-2*margin)*d.Seconds()/span.Seconds()) }
	step := 10 * time.Second
	if span > 5*time.Minute {
		step = time.Minute
	}
	for t := time.Duration(0); t <= span; t += step {
		fill(img, image.Rect(x(t), margin/2, x(t)+1, height-margin/2), chartGrid)
	}
	row := 0
	bar := func(start, d time.Duration, c color.Color) {
		y := margin + row*(rowH+gap)
		fill(img, image.Rect(x(start), y, max(x(start+d), x(start)+2), y+rowH), c)
		row++
	}
	for i, d := range r.Completion {
		c := color.Color(chartP2P)
		if d == 0 {
			c, d = chartKilled, span/100
		}
		bar(time.Duration(i)*r.Spec.Stagger, d, c)
	}
	if baseline != nil {
		row++
		for i, d := range baseline.Completion {
			bar(time.Duration(i)*baseline.Spec.Stagger, d, chartBaseline)
		}
	}
	fill(img, image.Rect(x(r.Bound), margin/2, x(r.Bound)+2, height-margin/2), chartBound)
	return png.Encode(w, img)
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}
