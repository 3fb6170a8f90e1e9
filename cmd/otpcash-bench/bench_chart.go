package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The paper's published figures (Mainetti et al. 2023, Section 3.1): about
// 0.78 s per coin once the ramp is past its start-up; 100 coins in 39 s at
// rest (Figure 13); more than 6 minutes for 500 coins; 892 mAh for 500
// coins in the worst case, so 1.784 mAh per coin (Equation 1).
const (
	paperSecondsPerCoin = 0.78
	paper100Coins       = 100
	paper100Seconds     = 39.0
	paper500Coins       = 500
	paper500Seconds     = 360.0 // "more than 6 minutes": a lower bound
	paperMAhPerCoin     = 1.784
)

// The energy model, an ESTIMATE: the payer's phone spends phoneCPUWatts
// for every second of CPU time the payer process used, and radioJoulesPerBit
// for every bit it sent or received; the charge is that energy at the
// battery's nominal voltage. docs/PERFORMANCE.md gives the sources.
const (
	phoneCPUWatts     = 2.0    // one busy big core of a phone SoC
	radioJoulesPerBit = 153e-9 // Bluetooth Low Energy, application payload
	batteryVolts      = 3.8    // iPhone 7's Li-ion cell, nominal
	energyModel       = "2 W per CPU-second + 153 nJ per bit on the radio, at 3.8 V"
)

// estimateMAh converts CPU seconds and wire bytes per coin to mAh per coin.
func estimateMAh(cpuSeconds, bytes float64) float64 {
	joules := phoneCPUWatts*cpuSeconds + radioJoulesPerBit*8*bytes
	return joules / batteryVolts / 3.6 // 1 mAh at V volts is 3.6 V joules
}

// plotRamp draws mean wall time against coins, on log-log axes since the
// paper's times are three orders of magnitude above these, with the
// paper's points alongside.
func plotRamp(path, title string, rows []rampRow, transport bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "coins sent in one payment"
	p.Y.Label.Text = "seconds (mean of the runs)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true

	full, bare, paperLine := make(plotter.XYs, len(rows)), make(plotter.XYs, len(rows)), make(plotter.XYs, len(rows))
	for i, r := range rows {
		n := float64(r.coins)
		full[i] = plotter.XY{X: n, Y: r.full.mean()}
		bare[i] = plotter.XY{X: n, Y: r.bare.mean()}
		paperLine[i] = plotter.XY{X: n, Y: paperSecondsPerCoin * n}
	}
	add := func(name string, xys plotter.XYs, c int, dashed bool) error {
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.Color, s.Color = plotutil.Color(c), plotutil.Color(c)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, s)
		p.Legend.Add(name, l, s)
		return nil
	}
	if err := add("paper, iPhone 7 with secure enclave: 0.78 s per coin", paperLine, 1, true); err != nil {
		return err
	}
	if err := add("otpcash, full protocol, durable writes", full, 0, false); err != nil {
		return err
	}
	if transport {
		if err := add("otpcash, transport only", bare, 2, false); err != nil {
			return err
		}
	}
	pts, err := plotter.NewScatter(plotter.XYs{{X: paper100Coins, Y: paper100Seconds}, {X: paper500Coins, Y: paper500Seconds}})
	if err != nil {
		return err
	}
	pts.Shape = draw.TriangleGlyph{}
	pts.Radius = vg.Points(4)
	pts.Color = color.Black
	p.Add(pts)
	p.Legend.Add("paper: 100 coins in 39 s; 500 in more than 6 min", pts)
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
