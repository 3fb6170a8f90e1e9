package bank

import (
	"reflect"
	"runtime"
	"sync"
	"testing"
)

// TestCreditGroup: calls that arrive while a group commits wait and are
// committed together by the first of them, up to maxGroupCoins coins a
// group, in their order of arrival; each call returns only once its own
// group has committed, and the last leader leaves no one waiting.
func TestCreditGroup(t *testing.T) {
	var g creditGroup
	var mu sync.Mutex
	var batches [][]string
	release := make(chan struct{})
	commit := func(batch []*creditCall) {
		var names []string
		for _, c := range batch {
			names = append(names, c.account)
		}
		mu.Lock()
		batches = append(batches, names)
		mu.Unlock()
		if names[0] == "a" {
			<-release // the first group stays open while the others queue
		}
		for _, c := range batch {
			c.resp.Balance = int64(len(c.checked))
		}
	}
	// waitUntil yields until cond holds: the order of arrival is set by
	// the test, not by the scheduler.
	waitUntil := func(cond func(g *creditGroup) bool) {
		for {
			g.mu.Lock()
			ok := cond(&g)
			g.mu.Unlock()
			if ok {
				return
			}
			runtime.Gosched()
		}
	}
	calls := []*creditCall{
		{account: "a", checked: make([]checkedCoin, 1)},
		{account: "b", checked: make([]checkedCoin, maxGroupCoins-1)},
		{account: "c", checked: make([]checkedCoin, 1)},
		{account: "d", checked: make([]checkedCoin, 1)},
	}
	var wg sync.WaitGroup
	for i, c := range calls {
		c.done = make(chan bool, 1)
		wg.Go(func() {
			g.do(c, commit)
			if c.resp.Balance != int64(len(c.checked)) {
				t.Errorf("call %s returned before its group committed", c.account)
			}
		})
		if i == 0 {
			waitUntil(func(g *creditGroup) bool { return g.leading })
		} else {
			waitUntil(func(g *creditGroup) bool { return len(g.queue) == i })
		}
	}
	close(release)
	wg.Wait()
	want := [][]string{{"a"}, {"b", "c"}, {"d"}}
	if !reflect.DeepEqual(batches, want) {
		t.Fatalf("groups %v, want %v", batches, want)
	}
	if g.leading || len(g.queue) != 0 {
		t.Fatalf("after the last group: leading %v, queue %d", g.leading, len(g.queue))
	}
}
