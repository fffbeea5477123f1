// Package layout has no code: its test checks, over `go list`, that every
// package of the module keeps DESIGN.md's dependency rules ("Layout and
// dependency rules", and the layers of "The stack's shape").
package layout
