package chart

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/pollnet/pollnet/internal/result"
)

// WriteMarkdown writes a Markdown page about a run whose files live in
// relDir (relative to where the page is): the same tables as index.html,
// with the charts as PNG images, for a README that a code host renders.
func WriteMarkdown(w io.Writer, run *result.Run, relDir string, charts []string) error {
	if run == nil {
		return fmt.Errorf("chart: no run to describe")
	}
	pg := buildPage(run, charts)
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# %s\n\n", md(pg.Title))
	p("Reference run, `%s`, on %s. Started %s. %d scenarios ran, %d skipped (with their reasons below).\n\n",
		pg.Command, md(pg.Machine), pg.Started, pg.NumRan, pg.NumSkip)
	p("On a shared virtual machine absolute figures move from run to run (here by up to a factor of two for the " +
		"2-core forwarding pipeline); ratios between paths measured in one run, as below, are what to compare.\n\n")
	p("Raw data: [result.json](%s), [result.csv](%s), [samples.csv](%s); the same page with SVG charts: [index.html](%s).\n\n",
		path.Join(relDir, result.JSONFile), path.Join(relDir, result.CSVFile), path.Join(relDir, result.SamplesFile),
		path.Join(relDir, IndexFile))
	if len(pg.Ratios) > 0 {
		p("## Paths compared\n\nRatios between paths that ran the same scenario with the same knobs, measured in this one run.\n\n")
		p("| scenario | knobs | A / B | median A | median B | throughput A/B | CPU per packet A/B |\n|---|---|---|---|---|---|---|\n")
		for _, r := range pg.Ratios {
			p("| %s | %s | %s / %s | %s | %s | %s | %s |\n", md(r.Name), md(r.Knobs), md(r.A), md(r.B), r.MedianA, r.MedianB, r.Tput, r.CPU)
		}
		p("\n")
	}
	for _, c := range pg.Charts {
		if c.PNG == "" {
			continue
		}
		p("## %s\n\n![%s](%s)\n\n", md(c.Title), md(c.Title), path.Join(relDir, c.PNG))
	}
	p("## Every scenario\n\n| # | scenario | path | knobs | metric | median | p99 | stddev | n | CPU s | counters |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range pg.Rows {
		var ks []string
		for _, kv := range r.Key {
			ks = append(ks, kv.K+"="+kv.V)
		}
		median := r.Median
		if r.Skipped != "" {
			median = "skipped: " + r.Skipped
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", r.N, md(r.Name), md(r.Path), md(r.Knobs),
			md(r.Metric), md(median), r.P99, r.Stddev, r.Samples, r.CPU, md(strings.Join(ks, " ")))
	}
	return nil
}

// md escapes what would break a Markdown table cell or start markup.
func md(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "'")
	return r.Replace(s)
}
