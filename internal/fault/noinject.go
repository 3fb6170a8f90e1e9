//go:build !faultinject

package fault

// Point does nothing: fault injection is compiled in only with the build
// tag faultinject.
func Point(string) {}
