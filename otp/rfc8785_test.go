package otp

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gowebpki/jcs"

	"github.com/otpcash/otpcash/internal/strictjson"
)

// rfc8785Vector is one input file of cyberphone's RFC 8785 test data and
// its canonical form (testdata/rfc8785; see testdata/README.md).
type rfc8785Vector struct {
	name    string
	in, out []byte
}

func rfc8785Vectors(t *testing.T) []rfc8785Vector {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "rfc8785", "input", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no RFC 8785 vectors (%v)", err)
	}
	var vs []rfc8785Vector
	for _, n := range names {
		in, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.ReadFile(filepath.Join("testdata", "rfc8785", "output", filepath.Base(n)))
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, rfc8785Vector{filepath.Base(n), in, out})
	}
	return vs
}

// TestRFC8785Canonical runs cyberphone's RFC 8785 test data through the
// general canonicalizers: jcs.Transform (what decodeExact applies to its
// input), Canonical (encoding/json, then JCS: what every signature and
// checksum is over when no direct encoder applies), and decodeExact
// (which must accept a document in any spelling that means its canonical
// form).
func TestRFC8785Canonical(t *testing.T) {
	for _, v := range rfc8785Vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			if got, err := jcs.Transform(v.in); err != nil || !bytes.Equal(got, v.out) {
				t.Errorf("jcs.Transform = %s, %v; want %s", got, err, v.out)
			}
			var doc any
			if err := json.Unmarshal(v.in, &doc); err != nil {
				t.Fatal(err)
			}
			if got, err := Canonical(doc); err != nil || !bytes.Equal(got, v.out) {
				t.Errorf("Canonical = %s, %v; want %s", got, err, v.out)
			}
			for _, b := range [][]byte{v.in, v.out} {
				var doc any
				if err := decodeExact(b, &doc); err != nil {
					t.Errorf("decodeExact(%s) = %v", b, err)
				}
			}
		})
	}
}

// TestRFC8785FastPaths checks the direct encoders (Step.MarshalJSON,
// Coin.checksummedCanonical, ExchangeKey.canonical) against the same
// data, piece by piece, since none of them writes arbitrary JSON: every
// string of the canonical outputs (names and values) in each string field
// they write, every integer in a coin's value, and every object of
// strings as exchange-key attributes. Where a direct encoder declines
// (text that is not plain ASCII, or needs escaping), the fallback through
// Canonical must give the RFC's form. Numbers with a fraction or an
// exponent do not apply: the project's only numbers are integers, and the
// direct encoders write int64 fields only (Canonical handles the rest, see
// TestRFC8785Canonical).
func TestRFC8785FastPaths(t *testing.T) {
	f := newFixture(t)
	var fast, fallback, skipped int
	for _, v := range rfc8785Vectors(t) {
		walkJSON(t, jsontext.Value(v.out), func(val jsontext.Value) {
			switch val.Kind() {
			case '"':
				var s string
				if err := json.Unmarshal(val, &s); err != nil {
					t.Fatal(err)
				}
				// A bare step is written as its name.
				got, err := Step{Method: s}.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				if plainText(s) {
					if !bytes.Equal(got, val) {
						t.Errorf("%s: Step.MarshalJSON(%q) = %s; want %s", v.name, s, got, val)
					}
				} else if canon, err := Canonical(Step{Method: s}); err != nil || !bytes.Equal(canon, val) {
					t.Errorf("%s: Canonical(Step %q) = %s, %v; want %s", v.name, s, canon, err, val)
				}
				c := *f.coin
				c.Data.Issuer, c.Data.Conditions, c.CallMethod = s, []string{s}, []Step{{Method: s}}
				ok := checkCoin(t, &c, []string{`"issuer":` + string(val), `"conditions":[` + string(val) + `]`, `"callMethod":[` + string(val) + `]`})
				k := f.exchange
				k.Issuer, k.Attrs = s, map[string]string{s: s}
				ok2 := checkExchangeKey(t, &k, []string{`"issuer":` + string(val), `"attrs":{` + string(val) + `:` + string(val) + `}`})
				if ok != plainText(s) || ok2 != plainText(s) {
					t.Errorf("%s: %q: direct encoders took it %v, %v; plain %v", v.name, s, ok, ok2, plainText(s))
				}
				count(ok, &fast, &fallback)
			case '0':
				lit := string(val)
				n, err := strconv.ParseInt(lit, 10, 64)
				if strings.ContainsAny(lit, ".eE") || err != nil || n > strictjson.MaxSafeInteger || n < -strictjson.MaxSafeInteger {
					skipped++
					return
				}
				c := *f.coin
				c.Data.Value = n
				if !checkCoin(t, &c, []string{`"value":` + lit + `}`}) {
					t.Errorf("%s: value %s: the direct encoder declined an integer", v.name, lit)
				}
				fast++
			case '{':
				var members map[string]any
				if err := json.Unmarshal(val, &members); err != nil {
					t.Fatal(err)
				}
				// The object's string members without what the direct
				// encoder declines in ASCII (control characters, quotes,
				// backslashes, <, >, &): it must decline the rest too, or
				// order them as RFC 8785 does, by UTF-16 code units,
				// which is not UTF-8 byte order beyond the BMP.
				printable := map[string]string{}
				for n, m := range members {
					if s, ok := m.(string); ok && !strings.ContainsFunc(n+s, func(r rune) bool { return r < 0x20 || strings.ContainsRune("\"\\<>&", r) }) {
						printable[n] = s
					}
				}
				k := f.exchange
				k.Attrs = printable
				checkExchangeKey(t, &k, nil)
				if len(printable) == 0 || len(printable) != len(members) {
					return // the whole object is not attributes
				}
				count(checkExchangeKey(t, &k, []string{`"attrs":` + string(val)}), &fast, &fallback)
			}
		})
	}
	t.Logf("direct encoders: %d pieces; fallback: %d; numbers not integers: %d", fast, fallback, skipped)
	if fast == 0 || fallback == 0 || skipped == 0 {
		t.Fatal("the vectors no longer exercise both paths")
	}
}

func count(ok bool, fast, fallback *int) {
	if ok {
		*fast++
	} else {
		*fallback++
	}
}

// checkCoin computes c's checksummed form the way ComputeChecksum does
// and checks that it contains each of want, and that the direct encoder,
// if it applies, agrees with Canonical. It reports whether it applied.
func checkCoin(t *testing.T, c *Coin, want []string) bool {
	t.Helper()
	canon, err := Canonical(checksummed{c.SchemaVersion, c.Data, c.CallMethod})
	if err != nil {
		t.Fatal(err)
	}
	direct, ok := c.checksummedCanonical()
	if ok && !bytes.Equal(direct, canon) {
		t.Errorf("direct coin encoding differs:\n got %s\nwant %s", direct, canon)
	}
	for _, w := range want {
		if !bytes.Contains(canon, []byte(w)) {
			t.Errorf("coin encoding %s lacks %s", canon, w)
		}
	}
	return ok
}

// checkExchangeKey is checkCoin for an exchange key's signed payload.
func checkExchangeKey(t *testing.T, k *ExchangeKey, want []string) bool {
	t.Helper()
	canon, err := Canonical(unsignedExchangeKey{k.Pub, k.Issuer, k.KeyID, k.Expires, k.Attrs})
	if err != nil {
		t.Fatal(err)
	}
	direct, ok := k.canonical(false)
	if ok && !bytes.Equal(direct, canon) {
		t.Errorf("direct exchange key encoding differs:\n got %s\nwant %s", direct, canon)
	}
	if p, err := k.payload(); err != nil || !bytes.Equal(p, canon) {
		t.Errorf("exchange key payload = %s, %v; want %s", p, err, canon)
	}
	for _, w := range want {
		if !bytes.Contains(canon, []byte(w)) {
			t.Errorf("exchange key encoding %s lacks %s", canon, w)
		}
	}
	return ok
}

// walkJSON calls visit for val and, inside arrays and objects, for every
// member name and value, each as it is written in val.
func walkJSON(t *testing.T, val jsontext.Value, visit func(jsontext.Value)) {
	t.Helper()
	visit(val)
	kind := val.Kind()
	if kind != '{' && kind != '[' {
		return
	}
	dec := jsontext.NewDecoder(bytes.NewReader(val))
	if _, err := dec.ReadToken(); err != nil {
		t.Fatal(err)
	}
	for dec.PeekKind() != '}' && dec.PeekKind() != ']' {
		if kind == '{' {
			name, err := dec.ReadValue()
			if err != nil {
				t.Fatal(err)
			}
			visit(slices.Clone(name))
		}
		elem, err := dec.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		walkJSON(t, slices.Clone(elem), visit)
	}
}
