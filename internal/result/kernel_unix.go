//go:build unix

package result

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelRelease returns the running kernel's release, as `uname -r` prints it.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		if r := unix.ByteSliceToString(u.Release[:]); r != "" {
			return r
		}
	}
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
