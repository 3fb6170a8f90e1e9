// Package parallel runs independent pieces of a batch on all CPUs. A batch
// of coins costs several signature checks, signatures and record
// encryptions per coin, each independent of the others: on a phone's or a
// laptop's several cores they are the part of a payment that parallelises.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// ForEach runs check(i) for every i in [0, n) on all CPUs and returns the
// error of the lowest i that failed, so the error does not depend on the
// schedule. After a failure it starts no new i.
func ForEach(n int, check func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := check(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if errs[i] = check(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
