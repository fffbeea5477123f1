package chart

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/pollnet/pollnet/internal/result"
)

// WriteMarkdown writes a Markdown page about a run whose files live in
// relDir (relative to where the page is), for a README that a code host
// renders: the charts first, as PNG images, each with the sentence that
// says what it shows in figures from the run; then the ratios between
// paths; then every scenario. Every number in the prose is computed from
// the run.
func WriteMarkdown(w io.Writer, run *result.Run, relDir string, charts []string) error {
	if run == nil {
		return fmt.Errorf("chart: no run to describe")
	}
	pg, err := buildPage(run, charts)
	if err != nil {
		return err
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# %s\n\n", md(pg.Title))
	p("Reference run, `%s`, on %s", pg.Command, md(pg.Machine))
	if pg.Commit != "" {
		p(", commit `%s`", pg.Commit)
	}
	p(". Started %s. %d scenarios ran, %d skipped (with their reasons below).\n\n", pg.Started, pg.NumRan, pg.NumSkip)
	for _, l := range pg.Lead {
		p("%s\n\n", md(l))
	}
	p("Raw data: [result.json](%s), [result.csv](%s), [samples.csv](%s); the same page with SVG charts: [index.html](%s).\n\n",
		path.Join(relDir, result.JSONFile), path.Join(relDir, result.CSVFile), path.Join(relDir, result.SamplesFile),
		path.Join(relDir, IndexFile))
	for _, c := range pg.Charts {
		if c.PNG == "" {
			continue
		}
		p("## %s\n\n![%s](%s)\n\n", md(c.Title), md(c.Title), path.Join(relDir, c.PNG))
		if c.About != "" {
			p("%s\n\n", md(c.About))
		}
	}
	if len(pg.Ratios) > 0 {
		p("## Paths compared\n\nThe same work under two paths, measured in this one run. Throughput ratios are withheld where a device under test was busy less than 90%% of the time (dut\\_busy < 0.9): the harness set that rate.\n\n")
		p("| scenario | knobs | A / B | median A | median B | A/B | CPU per packet A/B |\n|---|---|---|---|---|---|---|\n")
		for _, r := range pg.Ratios {
			ratio := r.Tput
			if ratio == "" {
				ratio = md(r.Note)
			}
			p("| %s | %s | %s / %s | %s | %s | %s | %s |\n", md(r.Name), md(r.Knobs), md(r.A), md(r.B), r.MedianA, r.MedianB, ratio, r.CPU)
		}
		p("\n")
	}
	p("## Every scenario\n\n| # | scenario | path | knobs | metric | median | spread | DUT busy | CPU s | counters |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range pg.Rows {
		var ks []string
		for _, kv := range r.Key {
			ks = append(ks, kv.K+"="+kv.V)
		}
		median := r.Median
		if r.Skipped != "" {
			median = "skipped: " + r.Skipped
		}
		pathPort := r.Path
		if r.Port != "" {
			pathPort += " · " + r.Port
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.N, md(r.Name), md(pathPort), md(r.Knobs),
			md(r.Metric), md(median), md(r.Spread), r.Busy, r.CPU, md(strings.Join(ks, " ")))
	}
	return nil
}

// md escapes what would break a Markdown table cell or start markup.
func md(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "'")
	return r.Replace(s)
}
