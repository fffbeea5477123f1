package tcp

import "os"

var debugTCP = os.Getenv("TCPDEBUG") != ""
