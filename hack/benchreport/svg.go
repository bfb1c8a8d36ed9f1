package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

type point struct{ x, y float64 }

func sortPoints(p []point) {
	slices.SortFunc(p, func(a, b point) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
}

type series struct {
	name   string
	points []point
	dashed bool
}

type chart struct {
	title, xLabel, yLabel string
	series                []series
}

// Plot area and colours; the palette tells lines apart in print too
// (dashes mark the baselines).
const (
	svgW, svgH                           = 720, 420
	padLeft, padRight, padTop, padBottom = 70, 180, 40, 50
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// svg draws the chart as a line plot with linear axes starting at 0.
func (c chart) svg() string {
	var maxX, maxY float64
	for _, s := range c.series {
		for _, p := range s.points {
			maxX, maxY = math.Max(maxX, p.x), math.Max(maxY, p.y)
		}
	}
	xTicks, yTicks := ticks(maxX), ticks(maxY)
	maxX, maxY = xTicks[len(xTicks)-1], yTicks[len(yTicks)-1]
	plotW, plotH := float64(svgW-padLeft-padRight), float64(svgH-padTop-padBottom)
	px := func(x float64) float64 { return padLeft + x/maxX*plotW }
	py := func(y float64) float64 { return padTop + plotH - y/maxY*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padLeft, html.EscapeString(c.title))
	for _, t := range yTicks {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padLeft, padLeft+plotW, py(t), py(t))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, py(t)+4, label(t))
	}
	for _, t := range xTicks {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(t), padTop+plotH+18, label(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", padLeft, padTop, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padLeft+plotW/2, svgH-8, html.EscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+plotH/2, html.EscapeString(c.yLabel))
	for i, s := range c.series {
		colour := palette[i%len(palette)]
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", px(p.x), py(p.y), colour)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colour, dash)
		ly := float64(padTop + 10 + 20*i)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", padLeft+plotW+12, padLeft+plotW+36, ly, ly, colour, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", padLeft+plotW+42, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// ticks returns 0 and about five round steps up to at least max.
func ticks(max float64) []float64 {
	if max <= 0 {
		return []float64{0, 1}
	}
	raw := max / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	out := []float64{0}
	for t := step; ; t += step {
		out = append(out, t)
		if t >= max {
			return out
		}
	}
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
