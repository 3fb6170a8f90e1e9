//go:build !unix

package main

// cpuUsage is not measured on this system: the ramp reports zero CPU time.
func cpuUsage() cpuUse { return cpuUse{} }
