package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"time"
)

// The chart's geometry.
const (
	chartWidth  = 1040
	labelWidth  = 170
	latX        = labelWidth + 10
	latWidth    = 400
	hitX        = latX + latWidth + 165 // room for the percentile labels
	hitWidth    = 200
	opsX        = hitX + hitWidth + 15
	rowHeight   = 26
	headHeight  = 54
	timelineH   = 130
	latMinNanos = 100.0 // the latency axis: 100ns ..
	latMaxNanos = 1e9   // .. 1s, log scale
)

var (
	pctColors  = [3]string{"#2b8cbe", "#f59e0b", "#dc2626"} // p50, p99, p99.9
	tierColors = [3]string{"#16a34a", "#60a5fa", "#d1d5db"} // L1, L2, loaded
	lineColors = []string{"#6b7280", "#a855f7", "#16a34a", "#0ea5e9", "#ef4444", "#f59e0b", "#84cc16", "#ec4899", "#14b8a6"}
)

// chartSVG draws, per scenario and cache, the read latency percentiles (log
// scale) and the share of reads each tier served, with the throughput; the
// expiry scenario adds its loads over time. Hand-written SVG, no
// dependencies.
func chartSVG(rep *report) []byte {
	var b bytes.Buffer
	y := 40
	var body bytes.Buffer
	for _, sc := range rep.Scenarios {
		rows := resultsOf(rep, sc.Name)
		y = chartScenario(&body, sc.Name, rows, y)
		if sc.Name == "expiry" {
			y = chartTimeline(&body, rows, y)
		}
		y += 16
	}
	height := y + 30
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="16" font-weight="bold">tiercache bench: %d nodes on %s</text>`+"\n",
		rep.Nodes, html.EscapeString(rep.Environment))
	b.Write(body.Bytes())
	legendY := height - 12
	x := 10
	for i, name := range []string{"p50", "p99", "p99.9"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="8" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, legendY-8, pctColors[i], x+16, legendY, name)
		x += 60
	}
	x += 20
	for i, name := range []string{"L1 hit", "L2 hit", "loaded / waited"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="8" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, legendY-8, tierColors[i], x+16, legendY, name)
		x += 70 + 6*len(name)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func chartScenario(b *bytes.Buffer, name string, rows []*result, y int) int {
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", y+14, html.EscapeString(name))
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#374151">read latency (log scale)</text>`+"\n", latX, y+14)
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#374151">reads served by</text>`+"\n", hitX, y+14)
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#374151">ops/s</text>`+"\n", opsX, y+14)
	top := y + headHeight - 20
	// The latency axis: a gridline per decade.
	for d := latMinNanos; d <= latMaxNanos; d *= 10 {
		x := latPos(d)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e7eb"/>`+"\n", x, top-4, x, top+rowHeight*len(rows))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#6b7280">%s</text>`+"\n", x, top-7, fmtDur(time.Duration(d)))
	}
	for i, r := range rows {
		ry := top + i*rowHeight
		weight := "normal"
		if r.Cache == "tiercache" {
			weight = "bold"
		}
		fmt.Fprintf(b, `<text x="10" y="%d" font-weight="%s">%s</text>`+"\n", ry+15, weight, html.EscapeString(r.Cache))
		if r.Skipped != "" {
			fmt.Fprintf(b, `<text x="%d" y="%d" fill="#6b7280" font-style="italic">%s</text>`+"\n", latX, ry+15, html.EscapeString(short(r.Skipped, 90)))
			continue
		}
		for j, d := range []time.Duration{r.P50, r.P99, r.P999} {
			w := latPos(float64(max(d, 1))) - latX
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="6" fill="%s"><title>%s %s</title></rect>`+"\n",
				latX, ry+3+7*j, math.Max(w, 1), pctColors[j], []string{"p50", "p99", "p99.9"}[j], fmtDur(d))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="10" fill="#374151">%s / %s / %s</text>`+"\n",
			latPos(float64(max(r.P999, 1)))+4, ry+16, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P999))
		x := float64(hitX)
		shares := []float64{r.L1Share, r.L2Share, math.Max(0, 1-r.L1Share-r.L2Share)}
		for j, s := range shares {
			w := s * hitWidth
			fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="18" fill="%s"><title>%s</title></rect>`+"\n", x, ry+2, w, tierColors[j], pct(s))
			x += w
		}
		if r.L1Share >= 0.12 {
			fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#ffffff">L1 %s</text>`+"\n", hitX+4, ry+15, pct(r.L1Share))
		}
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", opsX, ry+15, groupDigits(uint64(r.Throughput)))
	}
	return top + rowHeight*len(rows)
}

// latPos maps a latency in ns onto the latency axis.
func latPos(ns float64) float64 {
	ns = math.Min(math.Max(ns, latMinNanos), latMaxNanos)
	return latX + latWidth*math.Log10(ns/latMinNanos)/math.Log10(latMaxNanos/latMinNanos)
}

// chartTimeline draws the expiry scenario's loads over time, one line per
// cache: jittered TTLs spread the reloads, others reload all at once.
func chartTimeline(b *bytes.Buffer, rows []*result, y int) int {
	y += 14
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#374151">loads per 25 ms from warm-up (expiry waves)</text>`+"\n", latX, y+10)
	top, h := y+18, timelineH-30
	var peak uint64
	n := 0
	for _, r := range rows {
		for _, v := range r.Timeline {
			peak = max(peak, v)
		}
		n = max(n, len(r.Timeline))
	}
	if peak == 0 || n < 2 {
		return y + 20
	}
	width := float64(chartWidth - latX - 20)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="none" stroke="#e5e7eb"/>`+"\n", latX, top, width, h)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#6b7280" text-anchor="end">%d</text>`+"\n", latX-4, top+8, peak)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#6b7280" text-anchor="end">0</text>`+"\n", latX-4, top+h)
	for s := 0; s*int(time.Second/timelineWidth) < n; s++ {
		x := float64(latX) + width*float64(s*int(time.Second/timelineWidth))/float64(n-1)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="10" fill="#6b7280" text-anchor="middle">%ds</text>`+"\n", x, top+h+12, s)
	}
	ly := top
	for i, r := range rows {
		if len(r.Timeline) == 0 {
			continue
		}
		color := lineColors[i%len(lineColors)]
		var pts bytes.Buffer
		for j, v := range r.Timeline {
			x := float64(latX) + width*float64(j)/float64(n-1)
			yy := float64(top+h) - float64(h)*math.Sqrt(float64(v)/float64(peak))
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, yy)
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", color, pts.String())
		fmt.Fprintf(b, `<rect x="10" y="%d" width="10" height="3" fill="%s"/><text x="24" y="%d" font-size="10">%s</text>`+"\n", ly+4, color, ly+9, html.EscapeString(r.Cache))
		ly += 13
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#6b7280">(square-root scale)</text>`+"\n", chartWidth-120, top+10)
	return max(top+h+16, ly)
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
