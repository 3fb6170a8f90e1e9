package denom

import (
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"0.01,0.02,0.05,1,2", "0.01,0.02,0.05,1.00,2.00", ""},
		{" 2 , 0.5,1", "0.50,1.00,2.00", ""},
		{"", "", "the list is empty"},
		{"1,1", "", "1.00 is listed twice"},
		{"1,0", "", "entry 2"},
		{"1,-2", "", "entry 2"},
		{"1.234", "", "at most two decimals"},
		{"1,,2", "", "entry 2"},
		{"99999999999999999999", "", "too large"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.in)
		if tt.err != "" {
			if !errors.Is(err, ErrSet) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %v, want ErrSet naming %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || s.String() != tt.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", tt.in, s, err, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	eur, err := Default("EUR")
	if err != nil || len(eur) != 15 || eur[0] != 1 || eur[14] != 50000 || eur.Validate() != nil {
		t.Fatalf("Default(EUR) = %v, %v", eur, err)
	}
	if _, err := Default("XTS"); !errors.Is(err, ErrNoDefault) {
		t.Errorf("Default(XTS) = %v, want ErrNoDefault", err)
	}
}

func TestWithdrawal(t *testing.T) {
	eur, _ := Default("EUR")
	for _, amt := range []int64{1, 7, 99, 100, 1000, 1234, 5000, 20000, 100000, 1234567} {
		c, err := eur.Withdrawal(amt)
		if err != nil {
			t.Fatalf("Withdrawal(%d): %v", amt, err)
		}
		if c.Total() != amt {
			t.Errorf("Withdrawal(%d) totals %d: %s", amt, c.Total(), c)
		}
		for v := range c {
			if !eur.Contains(v) {
				t.Errorf("Withdrawal(%d) uses %d, not a denomination", amt, v)
			}
		}
		// Every amount up to the kit's reach is payable exactly.
		reach := eur.Reach(amt)
		for x := int64(1); x <= reach; x += 1 + x/100 {
			if _, err := Best(x, c, nil); err != nil {
				t.Fatalf("Withdrawal(%d) = %s cannot pay %d within its reach %d: %v", amt, c, x, reach, err)
			}
		}
	}
	ten, _ := eur.Withdrawal(1000)
	if got := ten.String(); got != "1x5.00 + 1x2.00 + 1x1.00 + 2x0.50 + 4x0.20 + 1x0.10 + 1x0.05 + 2x0.02 + 1x0.01" {
		t.Errorf("Withdrawal(10.00) = %s", got)
	}
	for _, bad := range []int64{0, -5} {
		if _, err := eur.Withdrawal(bad); !errors.Is(err, ErrAmount) {
			t.Errorf("Withdrawal(%d) = %v, want ErrAmount", bad, err)
		}
	}
	if _, err := (Set{200, 500}).Withdrawal(300); !errors.Is(err, ErrAmount) {
		t.Errorf("3.00 in 2.00 and 5.00: %v, want ErrAmount", err)
	}
	if c, err := (Set{200, 500}).Withdrawal(600); err != nil || c.Total() != 600 {
		t.Errorf("6.00 in 2.00 and 5.00: %s, %v", c, err)
	}
}

func TestBestExamples(t *testing.T) {
	tests := []struct {
		name         string
		amt          int64
		payer, payee Counts
		send, change string
		err          string
	}{
		{"exact", 700, Counts{500: 1, 200: 1, 100: 1}, nil, "1x5.00 + 1x2.00", "none", ""},
		{"change", 300, Counts{500: 1}, Counts{200: 1}, "1x5.00", "1x2.00", ""},
		{"fewer coins with change", 900, Counts{1000: 1, 200: 4, 100: 1}, Counts{100: 1}, "1x10.00", "1x1.00", ""},
		{"not enough", 600, Counts{500: 1}, Counts{100: 9}, "", "", "the payer holds 5.00 in all"},
		{"no change to give", 347, Counts{500: 1}, Counts{200: 1}, "", "", "cannot give 1.53 in change"},
		{"payee empty", 300, Counts{500: 1}, nil, "", "", "the payee has no coins to give 2.00 in change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Best(tt.amt, tt.payer, tt.payee)
			if tt.err != "" {
				if !errors.Is(err, ErrUnpayable) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Best = %v, want ErrUnpayable naming %q", err, tt.err)
				}
				return
			}
			if err != nil || p.Send.String() != tt.send || p.Change.String() != tt.change {
				t.Fatalf("Best = send %s, change %s, %v; want %s, %s", p.Send, p.Change, err, tt.send, tt.change)
			}
		})
	}
}

// brute returns, for every amount, the fewest coins any plan moves, by
// trying every pair of sub-purses.
func brute(payer, payee Counts) map[int64]int {
	type sub struct {
		total int64
		n     int
	}
	subs := func(c Counts) []sub {
		out := []sub{{}}
		for v, k := range c {
			var next []sub
			for _, s := range out {
				for i := 0; i <= k; i++ {
					next = append(next, sub{s.total + int64(i)*v, s.n + i})
				}
			}
			out = next
		}
		return out
	}
	best := map[int64]int{}
	changes := subs(payee)
	for _, s := range subs(payer) {
		for _, c := range changes {
			if x := s.total - c.total; x > 0 {
				if m, ok := best[x]; !ok || s.n+c.n < m {
					best[x] = s.n + c.n
				}
			}
		}
	}
	return best
}

func randomPurse(r *rand.Rand, values []int64, coins int) Counts {
	c := Counts{}
	for range r.IntN(coins + 1) {
		c[values[r.IntN(len(values))]]++
	}
	return c
}

// TestBestProperties checks Best against brute force on random small
// purses: every payable amount is paid exactly, with the fewest coins, from
// coins each side holds; every other amount is refused; and Best never
// moves more coins than Greedy.
func TestBestProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sets := [][]int64{
		{1, 2, 5, 10, 20, 50, 100, 200, 500},
		{1, 3, 4},   // greedy is not optimal here
		{25, 10, 5}, // no unit coin
		{200, 500},
	}
	plans, greedyWorse := 0, 0
	for iter := range 400 {
		values := sets[iter%len(sets)]
		payer, payee := randomPurse(r, values, 6), randomPurse(r, values, 5)
		want := brute(payer, payee)
		for amt := int64(1); amt <= payer.Total()+1; amt++ {
			p, err := Best(amt, payer, payee)
			fewest, payable := want[amt]
			if !payable {
				if !errors.Is(err, ErrUnpayable) {
					t.Fatalf("Best(%d, %s, %s) = %+v, %v; brute force finds no plan", amt, payer, payee, p, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Best(%d, %s, %s): %v; brute force pays it with %d coins", amt, payer, payee, err, fewest)
			}
			plans++
			if p.Send.Total()-p.Change.Total() != amt {
				t.Fatalf("Best(%d) sends %s and gives back %s", amt, p.Send, p.Change)
			}
			if !within(p.Send, payer) || !within(p.Change, payee) {
				t.Fatalf("Best(%d) uses coins the sides do not hold: send %s of %s, change %s of %s", amt, p.Send, payer, p.Change, payee)
			}
			if p.Moved() != fewest {
				t.Fatalf("Best(%d, %s, %s) moves %d coins, brute force %d", amt, payer, payee, p.Moved(), fewest)
			}
			if g, err := Greedy(amt, payer, payee); err == nil {
				if g.Send.Total()-g.Change.Total() != amt || !within(g.Send, payer) || !within(g.Change, payee) {
					t.Fatalf("Greedy(%d) is not a plan: %+v", amt, g)
				}
				if p.Moved() > g.Moved() {
					t.Fatalf("Best(%d) moves %d coins, Greedy %d", amt, p.Moved(), g.Moved())
				}
				if p.Moved() < g.Moved() {
					greedyWorse++
				}
			}
		}
	}
	t.Logf("%d plans checked; Best moved fewer coins than Greedy in %d", plans, greedyWorse)
	if plans < 1000 || greedyWorse == 0 {
		t.Fatalf("the random purses exercised too little: %d plans, %d better than greedy", plans, greedyWorse)
	}
}

func within(c, purse Counts) bool {
	for v, n := range c {
		if n < 0 || n > purse[v] {
			return false
		}
	}
	return true
}

func TestBestBounds(t *testing.T) {
	if _, err := Best(0, Counts{1: 1}, nil); !errors.Is(err, ErrAmount) {
		t.Errorf("Best(0) = %v, want ErrAmount", err)
	}
	huge := Counts{1: 1, math.MaxInt64 / 4: 2}
	if _, err := Best(math.MaxInt64/4+1, huge, Counts{1: 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Best over astronomical sums = %v, want ErrTooLarge", err)
	}
	c := Counts{100: 3, 5: -1}
	if c.Total() != 300 || c.Len() != 3 {
		t.Errorf("Counts ignore negative entries: total %d, len %d", c.Total(), c.Len())
	}
	if !maps.Equal(Counts{}, Counts{}) || (Counts{}).String() != "none" {
		t.Error("empty counts")
	}
}

func TestCountsOf(t *testing.T) {
	tests := []struct {
		values []int64
		want   Counts
	}{
		{nil, Counts{}},
		{[]int64{200}, Counts{200: 1}},
		{[]int64{50, 200, 50, 10}, Counts{200: 1, 50: 2, 10: 1}},
	}
	for _, tt := range tests {
		got := CountsOf(tt.values)
		if !maps.Equal(got, tt.want) || got.Len() != len(tt.values) {
			t.Errorf("CountsOf(%v) = %v; want %v", tt.values, got, tt.want)
		}
	}
}
