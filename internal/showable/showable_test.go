package showable

import "testing"

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"2 coffees & a <croissant> ☕", true},
		{"U+FFFD itself \uFFFD is text", true},
		{"", true},
		{"\x1b[2Kpaid 500.00", false},
		{"line\nbreak", false},
		{"carriage\rreturn", false},
		{"del\x7f", false},
		{"c1 \u0085", false},
		{"reversed \u202etxt.exe", false},
		{"isolate \u2066", false},
		{"line sep \u2028", false},
		{"para sep \u2029", false},
		{"bad utf-8 \xff", false},
	} {
		if err := Check(tt.in); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v; want ok %v", tt.in, err, tt.ok)
		}
	}
}
