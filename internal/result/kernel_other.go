//go:build !unix

package result

// kernelRelease has nothing to report off Unix; the OS field still says where
// the run happened.
func kernelRelease() string { return "" }
