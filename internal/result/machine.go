package result

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// DetectMachine describes the machine this process runs on. Fields it cannot
// find are left empty rather than failing, since a result without a CPU name
// is still worth keeping.
func DetectMachine() Machine {
	host, _ := os.Hostname()
	return Machine{
		CPU:        cpuModel("/proc/cpuinfo"),
		Cores:      runtime.NumCPU(),
		Kernel:     kernelRelease(),
		Go:         runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Hostname:   host,
		Commit:     buildCommit(),
	}
}

// buildCommit is the commit the binary was built from, from the build's VCS
// stamp: a short hash, with "-dirty" when the tree had uncommitted changes,
// or "" when the build carries no stamp (go test, go run outside a checkout).
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// cpuModel returns the first "model name" in a /proc/cpuinfo-style file.
// Some arm64 kernels have no such line; "Hardware" or "CPU part" stand in.
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var fallback string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			if val != "" {
				return val
			}
		case "Hardware", "CPU part":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}
