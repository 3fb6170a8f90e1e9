//go:build unix

package main

import (
	"syscall"
	"time"
)

// cpuUsage is this process's CPU time and page faults so far, as the
// operating system accounts them.
func cpuUsage() cpuUse {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuUse{}
	}
	return cpuUse{User: time.Duration(ru.Utime.Nano()), Sys: time.Duration(ru.Stime.Nano()), Faults: int64(ru.Minflt)}
}
