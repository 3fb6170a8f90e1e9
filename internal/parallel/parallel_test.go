package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestForEach(t *testing.T) {
	tests := []struct {
		name string
		n    int
		fail map[int]bool
		want string // error text; "" for none
	}{
		{"none", 0, nil, ""},
		{"one", 1, nil, ""},
		{"all succeed", 1000, nil, ""},
		{"one fails", 1000, map[int]bool{517: true}, "item 517"},
		{"the lowest failure is reported", 1000, map[int]bool{3: true, 900: true}, "item 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran atomic.Int64
			seen := make([]atomic.Bool, tt.n)
			err := ForEach(tt.n, func(i int) error {
				ran.Add(1)
				if seen[i].Swap(true) {
					t.Errorf("item %d ran twice", i)
				}
				if tt.fail[i] {
					return fmt.Errorf("item %d", i)
				}
				return nil
			})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ForEach = %v, want nil", err)
				}
				if int(ran.Load()) != tt.n {
					t.Fatalf("ran %d of %d items", ran.Load(), tt.n)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ForEach = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestForEachLowestErrorWhateverTheSchedule(t *testing.T) {
	first := errors.New("first")
	for range 100 {
		err := ForEach(64, func(i int) error {
			if i == 0 {
				return first
			}
			return errors.New("later")
		})
		if !errors.Is(err, first) {
			t.Fatalf("ForEach = %v, want the error of item 0", err)
		}
	}
}
