//go:build !unix

package main

import "time"

// cpuTime is not measured on this system: the ramp reports zero CPU time.
func cpuTime() time.Duration { return 0 }
