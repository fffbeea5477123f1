module github.com/pollnet/pollnet

go 1.26.0

require (
	github.com/montanaflynn/stats v0.14.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
