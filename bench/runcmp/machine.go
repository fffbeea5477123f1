package runcmp

import (
	"strconv"

	"github.com/pollnet/pollnet/internal/result"
)

// MachineField is one property of the two machines, as each run's file
// recorded it ("" when the file does not record it).
type MachineField struct {
	Name string
	A, B string
}

// Differs reports whether both runs recorded the field and the values differ.
func (f MachineField) Differs() bool { return f.A != "" && f.B != "" && f.A != f.B }

// Unknown reports whether exactly one run recorded the field, so whether the
// two agree cannot be told.
func (f MachineField) Unknown() bool { return (f.A == "") != (f.B == "") }

// machineFields lists the properties compared, commit last: it is the one
// expected to differ, since comparing builds is what compare is for.
func machineFields(a, b result.Machine) []MachineField {
	num := func(n int) string {
		if n <= 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	return []MachineField{
		{"cpu", a.CPU, b.CPU},
		{"cores", num(a.Cores), num(b.Cores)},
		{"kernel", a.Kernel, b.Kernel},
		{"go", a.Go, b.Go},
		{"gomaxprocs", num(a.GOMAXPROCS), num(b.GOMAXPROCS)},
		{"hostname", a.Hostname, b.Hostname},
		{"commit", a.Commit, b.Commit},
	}
}

// MachineDiffs names the machine properties other than the commit that both
// runs recorded and that differ: where they do, the figures differ for
// reasons that are not the code.
func (r *Report) MachineDiffs() []string {
	var d []string
	for _, f := range r.Machines {
		if f.Name != "commit" && f.Differs() {
			d = append(d, f.Name)
		}
	}
	return d
}
