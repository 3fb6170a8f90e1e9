package denom

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0.01,0.02,0.05,0.10,0.20,0.50,1,2,5,10,20,50,100,200,500", "1,1", "", "0", "1.234", " 2 , 0.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSet) {
				t.Fatalf("Parse(%q) = %v, not ErrSet", s, err)
			}
			return
		}
		if err := set.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %v, which does not validate: %v", s, set, err)
		}
		again, err := Parse(set.String())
		if err != nil || again.String() != set.String() {
			t.Fatalf("Parse(String()) of %v = %v, %v", set, again, err)
		}
	})
}
