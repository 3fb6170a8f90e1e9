package strictjson

import (
	"errors"
	"testing"
)

type doc struct {
	Amount int64  `json:"amount"`
	Count  int    `json:"count,omitempty"`
	Memo   string `json:"memo"`
	Inner  *struct {
		N int32 `json:"n"`
	} `json:"inner,omitempty"`
}

func TestUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *doc // nil: refused
		unsafe   bool // refused with ErrUnsafeInteger
	}{
		{"plain", `{"amount":7,"memo":"x"}`, &doc{Amount: 7, Memo: "x"}, false},
		{"duplicate name", `{"amount":-1,"amount":7}`, nil, false},
		{"mis-cased name", `{"Amount":7}`, nil, false},
		{"unknown name", `{"amount":7,"extra":1}`, nil, false},
		{"trailing data", `{"amount":7} {}`, nil, false},
		{"largest safe integer", `{"amount":9007199254740991}`, &doc{Amount: 1<<53 - 1}, false},
		{"smallest safe integer", `{"amount":-9007199254740991}`, &doc{Amount: -(1<<53 - 1)}, false},
		{"2^53", `{"amount":9007199254740992}`, nil, true},
		{"2^53+1", `{"amount":9007199254740993}`, nil, true},
		{"-2^53", `{"amount":-9007199254740992}`, nil, true},
		{"beyond int64", `{"amount":99999999999999999999}`, nil, true},
		{"fraction", `{"amount":1.0}`, nil, false},
		{"exponent", `{"amount":1e2}`, nil, false},
		{"int in a nested int32", `{"amount":1,"inner":{"n":4294967296}}`, nil, true},
		{"string for a number", `{"amount":"7"}`, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			err := Unmarshal([]byte(tc.in), &got)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %+v, want an error", tc.in, got)
				}
				if tc.unsafe != errors.Is(err, ErrUnsafeInteger) {
					t.Fatalf("Unmarshal(%s): %v; want ErrUnsafeInteger %v", tc.in, err, tc.unsafe)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if got.Amount != tc.want.Amount || got.Memo != tc.want.Memo {
				t.Fatalf("Unmarshal(%s) = %+v, want %+v", tc.in, got, *tc.want)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"amount":7,"memo":"x","inner":{"n":1}}`))
	f.Add([]byte(`{"amount":9007199254740993}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d doc
		if Unmarshal(b, &d) != nil {
			return
		}
		if d.Amount > MaxSafeInteger || d.Amount < -MaxSafeInteger {
			t.Fatalf("accepted %d", d.Amount)
		}
	})
}
