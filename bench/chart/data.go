package chart

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pollnet/pollnet/internal/result"
)

// ran reports whether a scenario produced figures: it was not skipped.
func ran(s *result.Scenario) bool { return s.Skipped == "" }

// finite reports whether v can be drawn.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// pick returns the scenarios that ran and satisfy keep, in run order.
func pick(run *result.Run, keep func(*result.Scenario) bool) []*result.Scenario {
	var out []*result.Scenario
	for i := range run.Scenarios {
		s := &run.Scenarios[i]
		if ran(s) && keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// number reads a numeric knob value. Knobs decoded from result.json are
// float64 while those built in-process are int or uint64; both must read
// the same.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// knobNum returns a numeric knob of s.
func knobNum(s *result.Scenario, key string) (float64, bool) {
	v, ok := s.Knobs[key]
	if !ok {
		return 0, false
	}
	f, ok := number(v)
	return f, ok && finite(f)
}

// knobBool returns an on/off knob of s. Besides JSON booleans it accepts
// the spellings a command line or ethtool would use ("on", "off", 1, 0), so
// a later bench that records offloads as ethtool prints them still charts.
func knobBool(s *result.Scenario, key string) (bool, bool) {
	v, ok := s.Knobs[key]
	if !ok {
		return false, false
	}
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(x) {
		case "on", "true", "yes", "1", "enabled":
			return true, true
		case "off", "false", "no", "0", "disabled":
			return false, true
		}
		return false, false
	}
	if f, ok := number(v); ok && (f == 0 || f == 1) {
		return f == 1, true
	}
	return false, false
}

// frameSize returns the "size" knob in bytes.
func frameSize(s *result.Scenario) (float64, bool) {
	v, ok := knobNum(s, "size")
	return v, ok && v > 0
}

// isPPS reports whether the scenario's metric is a packet rate.
func isPPS(s *result.Scenario) bool {
	switch strings.ToLower(s.Unit) {
	case "packets/s", "pps", "packets per second", "pkt/s":
		return true
	}
	return strings.HasSuffix(s.Metric, "_pps")
}

// formatKnob spells a knob value the way result.json does, without quotes
// around strings and without exponents for whole numbers.
func formatKnob(v any) string {
	if f, ok := number(v); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// knobPart is how a knob appears in a label: sizes as "64 B", the rest as
// key=value.
func knobPart(key string, v any) string {
	f, ok := number(v)
	switch {
	case ok && key == "size":
		return strconv.FormatFloat(f, 'f', -1, 64) + " B"
	case ok && (strings.HasSuffix(key, "size") || strings.HasSuffix(key, "bytes")):
		return key + "=" + binaryBytes(f) // file_size=64 KiB, not 65536
	}
	return key + "=" + formatKnob(v)
}

// binaryBytes writes whole multiples of KiB, MiB and GiB in those units and
// anything else in bytes.
func binaryBytes(v float64) string {
	for _, u := range []struct {
		n    float64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if v >= u.n && math.Mod(v, u.n) == 0 {
			return strconv.FormatFloat(v/u.n, 'f', -1, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + " B"
}

// labeler names scenarios by what sets them apart within one chart: the
// path always, then the scenario name, port and metric where these differ,
// then every knob that takes two values among scenarios of the same path.
// Knobs that only one path has (napi's budget) are constant within that
// path and stay out of the label, so "pollnet-napi" is not "pollnet-napi
// budget=300". A knob that some scenarios of a path lack is shown only if
// leaving it out would give two different scenarios the same label.
type labeler struct {
	name, port, metric bool
	knobs              map[string][]string // path → knob keys shown
}

// newLabeler looks at scs to decide what varies. Knobs in omit are never
// shown: they are the chart's own axis or categories.
func newLabeler(scs []*result.Scenario, omit ...string) *labeler {
	l := &labeler{knobs: map[string][]string{}}
	names, ports, metrics := map[string]bool{}, map[string]bool{}, map[string]bool{}
	byPath := map[string][]*result.Scenario{}
	var paths []string
	for _, s := range scs {
		names[s.Name] = true
		ports[s.Port] = true
		metrics[s.Metric] = true
		if _, ok := byPath[s.Path]; !ok {
			paths = append(paths, s.Path)
		}
		byPath[s.Path] = append(byPath[s.Path], s)
	}
	l.name, l.port, l.metric = len(names) > 1, len(ports) > 1, len(metrics) > 1
	skip := map[string]bool{"mode": true, "duration_s": true} // mode repeats the path; duration is how, not what
	for _, k := range omit {
		skip[k] = true
	}
	for _, path := range paths {
		group := byPath[path]
		vals := map[string]map[string]bool{} // knob → values present
		partial := map[string]bool{}         // knobs some scenarios lack
		for _, s := range group {
			for k, v := range s.Knobs {
				if skip[k] {
					continue
				}
				if vals[k] == nil {
					vals[k] = map[string]bool{}
				}
				vals[k][formatKnob(v)] = true
			}
		}
		var vary, some []string
		for k, vs := range vals {
			for _, s := range group {
				if _, ok := s.Knobs[k]; !ok {
					partial[k] = true
				}
			}
			switch {
			case len(vs) > 1:
				vary = append(vary, k)
			case partial[k]:
				some = append(some, k)
			}
		}
		sortKnobKeys(vary)
		l.knobs[path] = vary
		if len(some) > 0 && l.collides(group, skip) {
			vary = append(vary, some...)
			sortKnobKeys(vary)
			l.knobs[path] = vary
		}
	}
	return l
}

// collides reports whether two scenarios of group that differ in a shown
// knob get the same label.
func (l *labeler) collides(group []*result.Scenario, skip map[string]bool) bool {
	ident := func(s *result.Scenario) string {
		m := map[string]any{}
		for k, v := range s.Knobs {
			if !skip[k] {
				m[k] = v
			}
		}
		f, _ := result.FormatKnobs(m)
		return s.Name + "\x00" + s.Port + "\x00" + s.Metric + "\x00" + f
	}
	seen := map[string]string{}
	for _, s := range group {
		lab, id := l.label(s), ident(s)
		if prev, ok := seen[lab]; ok && prev != id {
			return true
		}
		seen[lab] = id
	}
	return false
}

// sortKnobKeys orders keys with size first, as the knob people look for.
func sortKnobKeys(keys []string) {
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "size") != (keys[j] == "size") {
			return keys[i] == "size"
		}
		return keys[i] < keys[j]
	})
}

// parts returns the pieces of the scenario's label.
func (l *labeler) parts(s *result.Scenario) []string {
	p := []string{s.Path}
	if s.Path == "" {
		p[0] = "(no path)"
	}
	if l.name {
		p = append(p, s.Name)
	}
	if l.port {
		p = append(p, "port "+s.Port)
	}
	if l.metric {
		p = append(p, s.Metric)
	}
	for _, k := range l.knobs[s.Path] {
		if v, ok := s.Knobs[k]; ok {
			p = append(p, knobPart(k, v))
		}
	}
	return p
}

// label returns the scenario's label on one line.
func (l *labeler) label(s *result.Scenario) string { return strings.Join(l.parts(s), " ") }

// series is a set of scenarios drawn as one line or one colour of bars.
type series struct {
	label string
	scs   []*result.Scenario
}

// groupSeries groups scenarios by label, in order of first appearance, so
// that paths keep the same order (and colour) as in the run.
func groupSeries(scs []*result.Scenario, l *labeler) []series {
	var out []series
	idx := map[string]int{}
	for _, s := range scs {
		lab := l.label(s)
		i, ok := idx[lab]
		if !ok {
			i = len(out)
			idx[lab] = i
			out = append(out, series{label: lab})
		}
		out[i].scs = append(out[i].scs, s)
	}
	return out
}

// sizes returns the distinct frame sizes of scs, ascending.
func sizes(scs []*result.Scenario) []float64 {
	var out []float64
	for _, s := range scs {
		if v, ok := frameSize(s); ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// dominant returns the scenarios of the metric most of scs carry (first in
// run order on a tie), and how many were left out, so that one axis never
// mixes packets/s with cores.
func dominant(scs []*result.Scenario) (kept []*result.Scenario, dropped int) {
	type key struct{ metric, unit string }
	count := map[key]int{}
	var order []key
	for _, s := range scs {
		k := key{s.Metric, s.Unit}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	var best key
	for _, k := range order {
		if count[k] > count[best] {
			best = k
		}
	}
	for _, s := range scs {
		if (key{s.Metric, s.Unit}) == best {
			kept = append(kept, s)
		}
	}
	return kept, len(scs) - len(kept)
}

// scale is a unit with an SI prefix chosen so that the largest value reads
// between 1 and 1000.
type scale struct {
	div  float64
	unit string
}

// rateUnits are short spellings of rate units for axis labels.
var rateUnits = map[string]string{
	"packets/s": "pps", "pps": "pps", "pkt/s": "pps",
	"bits/s": "bit/s", "bit/s": "bit/s", "bps": "bit/s",
	"bytes/s": "B/s", "B/s": "B/s",
	"connections/s": "conn/s", "conn/s": "conn/s",
	"requests/s": "req/s", "req/s": "req/s",
}

// scaleFor picks the prefix for values up to max in unit. Only rates get a
// prefix; "cores" or "ns" read as they are.
func scaleFor(unit string, max float64) scale {
	short, ok := rateUnits[unit]
	if !ok {
		if !strings.HasSuffix(unit, "/s") {
			return scale{1, unit}
		}
		short = unit
	}
	switch a := math.Abs(max); {
	case a >= 1e9:
		return scale{1e9, "G" + short}
	case a >= 1e6:
		return scale{1e6, "M" + short}
	case a >= 1e3:
		return scale{1e3, "k" + short}
	}
	return scale{1, short}
}

// format writes v in the scale with four significant digits.
func (sc scale) format(v float64) string {
	s := strconv.FormatFloat(v/sc.div, 'g', 4, 64)
	if strings.Contains(s, "e") {
		s = strconv.FormatFloat(v/sc.div, 'f', 2, 64)
	}
	if sc.unit == "" {
		return s
	}
	return s + " " + sc.unit
}

// cpuPerPacket is the forwarder's CPU time per packet in ns, falling back
// to the whole process's when the forwarder's own was not measured.
func cpuPerPacket(s *result.Scenario) (float64, string, bool) {
	for _, k := range []string{"dut_cpu_ns_per_packet", "ns_per_packet", "cpu_ns_per_packet"} {
		if v, ok := s.Extra[k]; ok && finite(v) && v > 0 {
			return v, k, true
		}
	}
	return 0, "", false
}

// cpuPerByte is the CPU time per byte moved in ns: an Extra figure when the
// bench recorded one, else CPU seconds over the bytes implied by a byte or
// bit rate and the run's length.
func cpuPerByte(s *result.Scenario) (float64, bool) {
	for _, k := range []string{"dut_cpu_ns_per_byte", "cpu_ns_per_byte"} {
		if v, ok := s.Extra[k]; ok && finite(v) && v > 0 {
			return v, true
		}
	}
	if !(s.CPUSeconds > 0) || !finite(s.CPUSeconds) {
		return 0, false
	}
	var perByte float64
	switch s.Unit {
	case "bytes/s", "B/s", "Bytes/s":
		perByte = 1
	case "bits/s", "bit/s", "bps", "b/s":
		perByte = 1.0 / 8
	default:
		return 0, false
	}
	secs := s.Extra["wall_seconds"]
	if !(secs > 0) {
		secs = float64(len(s.Samples)) // samples are one second each
	}
	bytes := s.Mean * perByte * secs
	if !(bytes > 0) || !finite(bytes) {
		return 0, false
	}
	return s.CPUSeconds * 1e9 / bytes, true
}

// busyThreshold is the dut_busy below which the harness, not the device
// under test, set a scenario's rate (DESIGN.md, "How we measure").
const busyThreshold = 0.9

// harnessLimited reports whether the scenario recorded a dut_busy below
// busyThreshold, and that figure. A scenario that recorded none (a peer,
// or a file from before the field) is not called limited: nothing says so.
func harnessLimited(s *result.Scenario) (busy float64, limited bool) {
	if s.DUTBusy == nil || !finite(*s.DUTBusy) {
		return 0, false
	}
	return *s.DUTBusy, *s.DUTBusy < busyThreshold
}

// isRate reports whether the scenario's metric is a rate (packets,
// transactions, bits or connections per second), where higher is better
// and a ratio is a throughput ratio.
func isRate(s *result.Scenario) bool {
	if isPPS(s) || strings.HasSuffix(s.Unit, "/s") {
		return true
	}
	for _, suf := range []string{"_bps", "_per_s"} {
		if strings.HasSuffix(s.Metric, suf) {
			return true
		}
	}
	return false
}

// offeredLoad reports whether the scenario ran at a rate set by the harness
// (an offered load, a fixed rate) rather than as fast as it could: its
// throughput is the offered rate and tells nothing, its CPU and latency do.
func offeredLoad(s *result.Scenario) bool {
	if s.Name == "load" {
		return true
	}
	if _, ok := s.Knobs["offered_pps"]; ok {
		return true
	}
	if _, ok := s.Knobs["load_share"]; ok {
		return true
	}
	v, ok := knobNum(s, "rate")
	return ok && v > 0
}

// movesNoBytes reports whether the scenario forwarded frames without
// copying them (zero_copy on, or a null port with copy off), so that a
// bit rate would count bytes nobody moved.
func movesNoBytes(s *result.Scenario) bool {
	if zc, ok := knobBool(s, "zero_copy"); ok && zc {
		return true
	}
	if cp, ok := knobBool(s, "copy"); ok && !cp {
		return true
	}
	return false
}

// isPollnet reports whether a path is one of ours rather than a peer.
func isPollnet(path string) bool { return strings.HasPrefix(path, "pollnet") }

// bookkeeping knobs say how a scenario was run, not what work it did; two
// scenarios that differ only in these did the same work.
var bookkeeping = map[string]bool{
	"mode": true, "duration_s": true, "warmup_s": true, "repeat": true, "gomaxprocs": true,
}

// differs lists the knobs both scenarios have, bookkeeping aside, whose
// values differ, as "batch 32 vs 1", sorted by knob.
func differs(a, b *result.Scenario) []string {
	var out []string
	for _, k := range sortedKeys(a.Knobs) {
		vb, ok := b.Knobs[k]
		if !ok || bookkeeping[k] {
			continue
		}
		if fa, fb := formatKnob(a.Knobs[k]), formatKnob(vb); fa != fb {
			out = append(out, k+" "+fa+" vs "+fb)
		}
	}
	return out
}

// workKnobs are the knobs that size the work, in order of preference:
// socket benches vary the payload (and may record the frame size it
// gives), forwarding benches the frame size.
var workKnobs = []string{"payload", "size"}

// workSize returns the knob that sizes the scenario's work and its value.
func workSize(s *result.Scenario) (key string, v float64, ok bool) {
	for _, k := range workKnobs {
		if v, ok := knobNum(s, k); ok && v > 0 {
			return k, v, true
		}
	}
	return "", 0, false
}

// workload is the same work under every path that ran it: one scenario
// name and metric at one frame size or payload. Ports are part of it only
// where pollnet itself ran the scenario on two ports (pps on the null port
// and on the wire are two workloads); a peer's own port (veth, loopback,
// gVisor's channel) does not set it apart from pollnet's.
type workload struct {
	key          string // identity within the run
	name, metric string
	unit         string
	port         string // "" unless the workload is split by port
	knob         string // "size", "payload" or "" for unsized work
	size         float64
	scs          []*result.Scenario // in run order
}

// workloads groups scs into workloads, in order of first appearance.
func workloads(scs []*result.Scenario) []*workload {
	// Split by port every workload of a scenario name and metric that
	// pollnet ran on two ports anywhere in scs.
	type named struct{ name, metric, unit string }
	pollnetPorts := map[named][]string{}
	for _, s := range scs {
		n := named{s.Name, s.Metric, s.Unit}
		if isPollnet(s.Path) && !slices.Contains(pollnetPorts[n], s.Port) {
			pollnetPorts[n] = append(pollnetPorts[n], s.Port)
		}
	}
	var out []*workload
	idx := map[string]*workload{}
	for _, s := range scs {
		k, v, _ := workSize(s)
		port := ""
		if len(pollnetPorts[named{s.Name, s.Metric, s.Unit}]) > 1 {
			port = s.Port
		}
		key := strings.Join([]string{s.Name, s.Metric, s.Unit, port, k, strconv.FormatFloat(v, 'g', -1, 64)}, "\x00")
		w, ok := idx[key]
		if !ok {
			w = &workload{key: key, name: s.Name, metric: s.Metric, unit: s.Unit, port: port, knob: k, size: v}
			idx[key] = w
			out = append(out, w)
		}
		w.scs = append(w.scs, s)
	}
	return out
}

// sizeText is the workload's size as prose: "64 B frames", "16 B
// payloads", or "" for unsized work.
func (w *workload) sizeText() string {
	n := strconv.FormatFloat(w.size, 'f', -1, 64) + " B"
	switch w.knob {
	case "size":
		return n + " frames"
	case "payload":
		return n + " payloads"
	}
	return ""
}

// workloadKeys maps every scenario of the run that ran to its workload's
// key, so that tables and sentences pair the same work under two paths.
func workloadKeys(run *result.Run) map[*result.Scenario]string {
	keys := map[*result.Scenario]string{}
	for _, w := range workloads(pick(run, func(*result.Scenario) bool { return true })) {
		for _, s := range w.scs {
			keys[s] = w.key
		}
	}
	return keys
}

// runsWord names what a scenario's samples are: independent runs where
// the file records repeats, else the per-second slices of one run that
// older files hold.
func runsWord(s *result.Scenario) string {
	if s.Repeat > 0 {
		return "runs"
	}
	return "samples"
}

// nsFactor converts a time unit to nanoseconds.
func nsFactor(unit string) float64 {
	switch strings.TrimSuffix(strings.ToLower(unit), "/packet") {
	case "us", "µs", "usec":
		return 1e3
	case "ms":
		return 1e6
	case "s":
		return 1e9
	}
	return 1
}
