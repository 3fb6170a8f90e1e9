package amount

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"7", 700}, {"7.00", 700}, {"7.5", 750}, {"12.34", 1234}, {"0.01", 1}, {"0007", 700},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{"", "0", "0.00", "-1", "1.234", "1.", ".5", "1e3", "abc", "1,50", " 1", "99999999999999999999", "92233720368547758.07"} {
		if v, err := Parse(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %d, %v; want ErrInvalid", in, v, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{700: "7.00", 1: "0.01", 1234: "12.34", 0: "0.00", -250: "-2.50"} {
		if got := Format(in); got != want {
			t.Errorf("Format(%d) = %q; want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"7", "7.00", "12.34", "0.01", "-1", "1.234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v <= 0 {
			t.Fatalf("Parse(%q) = %d: not positive", s, v)
		}
		back, err := Parse(Format(v))
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, v, Format(v), back, err)
		}
	})
}
