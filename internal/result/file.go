package result

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/bytebufferpool"
)

// File names inside a result directory.
const (
	JSONFile    = "result.json"
	CSVFile     = "result.csv"
	SamplesFile = "samples.csv"
)

// DefaultDir is where a run goes when --out is not given:
// base/<YYYY-MM-DD>-<suite>, the date taken in started's own location.
// Path separators in suite become '-' so the result stays one directory.
func DefaultDir(base string, started time.Time, suite string) string {
	name := started.Format("2006-01-02")
	if suite != "" {
		name += "-" + strings.Map(func(r rune) rune {
			if r == '/' || r == os.PathSeparator {
				return '-'
			}
			return r
		}, suite)
	}
	return filepath.Join(base, name)
}

// encodeBuffers holds the buffers a result is encoded into before it is
// written: their size varies from run to run, so they come from a pool that
// learns the sizes in use (bytebufferpool) rather than being allocated anew.
var encodeBuffers bytebufferpool.Pool

// Write stores the run in dir as result.json, result.csv and samples.csv,
// creating dir if needed. Everything is encoded before the first file is
// touched, and each file is written to a temporary name and renamed into
// place, so a failed or interrupted Write never leaves a half-written file.
//
// Scenarios that ran without recording their provenance (see
// ProvenanceWarnings) do not stop the write: the lines naming them are added
// to r.Machine.Warnings first, so the file and the caller's Run both say so.
func (r *Run) Write(dir string) error {
	r.Machine.addWarnings(r.ProvenanceWarnings())
	bufs := [3]*bytebufferpool.ByteBuffer{encodeBuffers.Get(), encodeBuffers.Get(), encodeBuffers.Get()}
	defer func() {
		for _, b := range bufs {
			encodeBuffers.Put(b)
		}
	}()
	js, summary, samples := bufs[0], bufs[1], bufs[2]
	enc := json.NewEncoder(js) // as json.MarshalIndent, with a final newline
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("result: encode %s: %w", filepath.Join(dir, JSONFile), err)
	}
	if err := r.summaryCSV(summary); err != nil {
		return fmt.Errorf("result: encode %s: %w", filepath.Join(dir, CSVFile), err)
	}
	if err := r.samplesCSV(samples); err != nil {
		return fmt.Errorf("result: encode %s: %w", filepath.Join(dir, SamplesFile), err)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{JSONFile, js.B}, {CSVFile, summary.B}, {SamplesFile, samples.B}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("result: %w", err)
		}
	}
	syncDir(dir)
	return nil
}

// writeAtomic writes data to a temporary file beside path, syncs it, and
// renames it over path.
func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	// CreateTemp makes 0600 files; results are meant to be shared.
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncDir makes the renames durable where the platform allows it; failure
// only weakens crash safety, so it is not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Read loads a result.json. path is either the file or the directory that
// holds it.
func Read(path string) (*Run, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, JSONFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("result: %s does not exist", path)
		}
		return nil, fmt.Errorf("result: %w", err)
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("result: %s is not a valid result file: %w", path, err)
	}
	return &r, nil
}

// summaryCSV renders one row per scenario, for spreadsheets and plotting
// tools that do not read JSON.
func (r *Run) summaryCSV(buf io.Writer) error {
	w := csv.NewWriter(buf)
	w.Write([]string{
		"name", "path", "port", "knobs", "metric", "unit",
		"median", "p99", "stddev", "mean", "min", "max",
		"cpu_seconds", "n_samples", "skipped",
		"roles", "gomaxprocs", "warmup_s", "repeat", "dut_busy",
	})
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		knobs, err := FormatKnobs(s.Knobs)
		if err != nil {
			return fmt.Errorf("scenario %q: %w", s.Name, err)
		}
		w.Write([]string{
			s.Name, s.Path, s.Port, knobs, s.Metric, s.Unit,
			formatFloat(s.Median), formatOptional(s.P99), formatFloat(s.Stddev),
			formatFloat(s.Mean), formatFloat(s.Min), formatFloat(s.Max),
			formatFloat(s.CPUSeconds), strconv.Itoa(len(s.Samples)), s.Skipped,
			formatRoles(s.Roles), strconv.Itoa(s.GOMAXPROCS), formatFloat(s.WarmupS),
			strconv.Itoa(s.Repeat), formatOptional(s.DUTBusy),
		})
	}
	w.Flush()
	return w.Error()
}

// samplesCSV renders every raw sample in long format, one per row, so that a
// chart can be rebuilt from the CSV alone.
func (r *Run) samplesCSV(buf io.Writer) error {
	w := csv.NewWriter(buf)
	w.Write([]string{"scenario", "name", "path", "sample", "value"})
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		idx := strconv.Itoa(i)
		for j, v := range s.Samples {
			w.Write([]string{idx, s.Name, s.Path, strconv.Itoa(j), formatFloat(v)})
		}
	}
	w.Flush()
	return w.Error()
}

// FormatKnobs renders knobs as "k=v;k=v" sorted by key, each value spelt as
// in result.json (strings unquoted), so the CSV agrees with the JSON before
// and after a round trip.
func FormatKnobs(knobs map[string]any) (string, error) {
	keys := make([]string, 0, len(knobs))
	for k := range knobs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		v, err := json.Marshal(knobs[k])
		if err != nil {
			return "", fmt.Errorf("knob %q: %w", k, err)
		}
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			b.WriteString(s)
		} else {
			b.Write(v)
		}
	}
	return b.String(), nil
}

// formatRoles renders roles as "role=core;role=core" sorted by role.
func formatRoles(roles map[string]int) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(roles)) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(roles[k]))
	}
	return b.String()
}

// formatFloat is the shortest text that reads back as the same float64,
// without an exponent in the range where encoding/json avoids one, so that
// 12300000 reads as such and not as 1.23e+07.
func formatFloat(v float64) string {
	f := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		f = 'e'
	}
	return strconv.FormatFloat(v, f, -1, 64)
}

// formatOptional formats a figure that may be absent as "" when it is.
func formatOptional(v *float64) string {
	if v == nil {
		return ""
	}
	return formatFloat(*v)
}
