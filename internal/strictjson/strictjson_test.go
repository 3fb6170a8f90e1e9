package strictjson

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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

func TestCheckIntegers(t *testing.T) {
	for _, tc := range []struct {
		in     string
		unsafe bool
	}{
		{`{"a":[1,-9007199254740991,9007199254740991],"b":{"c":0}}`, false},
		{`{"a":9007199254740992}`, true},
		{`[0,{"deep":[-9007199254740993]}]`, true},
		{`99999999999999999999`, true},
		{`{"f":1.5,"big":1e300,"g":9007199254740993.0}`, false}, // not integers: written as doubles
		{`"9007199254740993"`, false},                           // a string
	} {
		err := CheckIntegers([]byte(tc.in))
		if tc.unsafe != errors.Is(err, ErrUnsafeInteger) || (!tc.unsafe && err != nil) {
			t.Errorf("CheckIntegers(%s) = %v; want unsafe %v", tc.in, err, tc.unsafe)
		}
	}
	if err := CheckIntegers([]byte(`{"a":`)); err == nil || errors.Is(err, ErrUnsafeInteger) {
		t.Errorf("CheckIntegers(truncated) = %v; want a syntax error", err)
	}
}

// FuzzCheckIntegers compares CheckIntegers, on valid JSON, with a walk of
// what encoding/json reads (numbers kept as their literals).
func FuzzCheckIntegers(f *testing.F) {
	for _, s := range []string{`[1,-9007199254740992]`, `{"a":{"b":[9007199254740991,1.5e3]}}`, `"x"`, `99999999999999999999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckIntegers(data)
		dec := stdjson.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		// encoding/json lets invalid UTF-8 through; jsontext does not.
		if dec.Decode(&v) != nil || dec.More() || !stdjson.Valid(data) || !utf8.Valid(data) {
			return
		}
		if want := hasUnsafe(v); want != errors.Is(err, ErrUnsafeInteger) || (!want && err != nil) {
			t.Fatalf("CheckIntegers(%s) = %v; an unsafe integer: %v", data, err, want)
		}
	})
}

func hasUnsafe(v any) bool {
	switch v := v.(type) {
	case stdjson.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return false
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		return err != nil || n > MaxSafeInteger || n < -MaxSafeInteger
	case []any:
		return slices.ContainsFunc(v, hasUnsafe)
	case map[string]any:
		for _, e := range v {
			if hasUnsafe(e) {
				return true
			}
		}
	}
	return false
}
