package otp

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"time"
)

// Equality of the formats' values, in one place. Each comparison is
// field by field, because it runs for every coin handled, and stands for
// a comparison of encodings: where it cannot tell cheaply that two values
// encode alike, it says they differ, or that it is not sure, so that a
// caller verifies or compares the encodings instead of trusting. The
// field lists below guard it against a field added to a format and not
// compared here.

// Equal reports whether p and q are the same program: same name, steps
// and conditions (nil and empty conditions are the same). Step arguments
// are compared in canonical form; arguments that cannot be encoded are
// never the same.
func (p Program) Equal(q Program) bool {
	return p.Name == q.Name && slices.Equal(p.Conditions, q.Conditions) && sameSteps(p.Steps, q.Steps)
}

// sameSteps reports whether two callMethods are the same, step for step,
// with arguments compared in canonical form.
func sameSteps(a, b []Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		sa, sb := &a[i], &b[i]
		if sa.Method != sb.Method {
			return false
		}
		if len(sa.Args) == 0 && len(sb.Args) == 0 {
			continue
		}
		ca, err := Canonical(sa.Args)
		if err != nil {
			return false
		}
		cb, err := Canonical(sb.Args)
		if err != nil || !bytes.Equal(ca, cb) {
			return false
		}
	}
	return true
}

// Equal reports whether k and o are the same certificate, field for
// field, so that they encode, and are signed, alike. It errs towards
// false: a time in another location, or a field it does not know, makes it
// report a difference.
func (k *ExchangeKey) Equal(o *ExchangeKey) bool {
	return exchangeKeyFieldsKnown &&
		k.Pub == o.Pub && k.Issuer == o.Issuer && k.KeyID == o.KeyID && k.Sig == o.Sig &&
		sameTime(k.Expires, o.Expires) && len(k.Attrs) == len(o.Attrs) && maps.Equal(k.Attrs, o.Attrs)
}

// sameTime reports whether a and b are one instant in one location, so
// that they encode alike; false when unsure.
func sameTime(a, b time.Time) bool {
	return a.Equal(b) && a.Location() == b.Location()
}

// Extends reports whether s is prefix, possibly with more transfers: the
// same coin, and a chain that begins with prefix's. Both are compared as
// their JSON encodings would be: field by field when that is certain to
// give the same answer (sameCoin, sameLinks), which is most of the time
// and costs nothing, else as JSON (the formats' Go types encode
// deterministically, and JCS on top would only cost time).
func (s *Sandbox) Extends(prefix *Sandbox) (bool, error) {
	n := len(prefix.Chain)
	if len(s.Chain) < n {
		return false, nil
	}
	if same, sure := sameCoin(&s.Coin, &prefix.Coin); sure && !same {
		return false, nil
	} else if sure {
		if same, sure := sameLinks(s.Chain[:n], prefix.Chain); sure {
			return same, nil
		}
	}
	a, err := sandboxJSON(&s.Coin, s.Chain[:n])
	if err != nil {
		return false, err
	}
	b, err := sandboxJSON(&prefix.Coin, prefix.Chain)
	if err != nil {
		return false, err
	}
	return bytes.Equal(a, b), nil
}

// sameCoin compares two coins field by field. sure is false when it cannot
// tell cheaply whether their JSON encodings are equal: a step with
// arguments, times in different locations, or a field of the coin format
// it does not know (coinFieldsCompared).
func sameCoin(a, b *Coin) (same, sure bool) {
	if !coinFieldsCompared {
		return false, false
	}
	da, db := &a.Data, &b.Data
	if a.SchemaVersion != b.SchemaVersion || a.Checksum != b.Checksum || a.Signature != b.Signature ||
		da.Token != db.Token || da.Value != db.Value || da.Currency != db.Currency ||
		da.Issuer != db.Issuer || da.KeyID != db.KeyID || da.Holder != db.Holder ||
		da.Program != db.Program || !sameStrings(da.Conditions, db.Conditions) ||
		(a.CallMethod == nil) != (b.CallMethod == nil) || len(a.CallMethod) != len(b.CallMethod) {
		return false, true
	}
	if !sameTime(da.Expires, db.Expires) {
		return false, false
	}
	for i := range a.CallMethod {
		if len(a.CallMethod[i].Args) > 0 || len(b.CallMethod[i].Args) > 0 {
			return false, false
		}
		if a.CallMethod[i].Method != b.CallMethod[i].Method {
			return false, true
		}
	}
	return true, true
}

// sameStrings compares two lists as JSON would: null and [] differ.
func sameStrings(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// sameLinks compares two chains link by link; sure is false when an
// exchange key cannot be compared cheaply (see ExchangeKey.Equal).
func sameLinks(a, b []Link) (same, sure bool) {
	if len(a) != len(b) || !linkFieldsKnown {
		return false, linkFieldsKnown
	}
	for i := range a {
		if a[i].Sig != b[i].Sig {
			return false, true
		}
		if !a[i].To.Equal(&b[i].To) {
			return false, false
		}
	}
	return true, true
}

// sandboxJSON encodes a coin and chain, writing no chain and an empty one
// alike.
func sandboxJSON(c *Coin, chain []Link) ([]byte, error) {
	if chain == nil {
		chain = []Link{}
	}
	return json.Marshal(Sandbox{Coin: *c, Chain: chain})
}

// The field lists the comparisons above, and the canonical writers, know.
var (
	// coinFieldsKnown guards checksummedCanonical (coin.go).
	coinFieldsKnown = fieldsAre(reflect.TypeFor[checksummed](), "SchemaVersion", "Data", "CallMethod") &&
		fieldsAre(reflect.TypeFor[Data](), "Token", "Value", "Currency", "Issuer", "KeyID", "Holder", "Expires", "Program", "Conditions")
	// coinFieldsCompared guards sameCoin.
	coinFieldsCompared = coinFieldsKnown &&
		fieldsAre(reflect.TypeFor[Coin](), "SchemaVersion", "Data", "CallMethod", "Checksum", "Signature") &&
		fieldsAre(reflect.TypeFor[Signature](), "Alg", "Value") &&
		fieldsAre(reflect.TypeFor[Step](), "Method", "Args")
	// exchangeKeyFieldsKnown guards ExchangeKey.Equal and
	// ExchangeKey.canonical.
	exchangeKeyFieldsKnown = fieldsAre(reflect.TypeFor[ExchangeKey](), "Pub", "Issuer", "KeyID", "Expires", "Attrs", "Sig")
	// linkFieldsKnown guards sameLinks.
	linkFieldsKnown = fieldsAre(reflect.TypeFor[Link](), "To", "Sig")
)

// fieldsAre reports whether struct type t has exactly the named fields.
func fieldsAre(t reflect.Type, names ...string) bool {
	if t.NumField() != len(names) {
		return false
	}
	for i, n := range names {
		if t.Field(i).Name != n {
			return false
		}
	}
	return true
}
