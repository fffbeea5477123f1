package progress

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// terminal reports whether w is a terminal, and its width in columns when
// known. Only an *os.File can be one; anything else (buffers, pipes wrapped
// in writers) is treated as a log.
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false, 0
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return false, 0
	}
	cols := 0
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
		cols = int(ws.Col)
	}
	return true, cols
}
