// Package strictjson decodes the JSON that otpcash reads from anyone else: a
// peer's messages, a request body, a stored or signed document. It refuses
// what encoding/json lets through and what would let two byte strings mean
// one value, or one value be read two ways:
//
//   - a member name repeated ({"amount":-1,"amount":7}) or spelt in another
//     letter case than the field's ("Amount" for "amount");
//   - a member no field names;
//   - anything after the one JSON value;
//   - an integer that is not a plain decimal literal, or whose magnitude
//     exceeds 2^53-1 (MaxSafeInteger): RFC 8785 canonical JSON reads numbers
//     as IEEE doubles, so two larger integers can share one canonical form,
//     and so one checksum.
//
// Every error names what was wrong, with its place in the input.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxSafeInteger is the largest integer magnitude every JSON reader,
// including the IEEE doubles of RFC 8785, represents exactly: 2^53-1.
const MaxSafeInteger = 1<<53 - 1

// ErrUnsafeInteger reports an integer outside ±MaxSafeInteger.
var ErrUnsafeInteger = errors.New("integer outside ±(2^53-1)")

// options are the decoder's: json v2 already refuses duplicate names and
// matches names case-sensitively by default; unknown members are refused,
// and every Go integer is read by safeInt.
var options = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.WithUnmarshalers(json.JoinUnmarshalers(
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *int64) error { return safeInt(dec, v) }),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *int) error { return safeInt(dec, v) }),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *int32) error { return safeInt(dec, v) }),
	)),
)

// Unmarshal decodes exactly one JSON value from data into v, strictly.
func Unmarshal(data []byte, v any) error {
	return json.Unmarshal(data, v, options)
}

// safeInt reads one JSON number that is a plain integer literal within
// ±MaxSafeInteger and fits T.
func safeInt[T int | int32 | int64](dec *jsontext.Decoder, v *T) error {
	val, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if val.Kind() != '0' {
		return fmt.Errorf("want an integer, got %s", val)
	}
	n, err := strconv.ParseInt(string(val), 10, 64)
	if errors.Is(err, strconv.ErrRange) || n > MaxSafeInteger || n < -MaxSafeInteger {
		return fmt.Errorf("%w: %s", ErrUnsafeInteger, val)
	}
	if err != nil {
		return fmt.Errorf("want an integer without fraction or exponent, got %s", val)
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%w: %s does not fit %T", ErrUnsafeInteger, val, *v)
	}
	*v = T(n)
	return nil
}

// CheckIntegers reports the first integer literal (a number without
// fraction or exponent) in the JSON text data whose magnitude exceeds
// MaxSafeInteger, wrapping ErrUnsafeInteger. Encoders call it before
// anything is signed or hashed over their output: RFC 8785 would write
// such a number rounded, so two values would share one canonical form.
func CheckIntegers(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if tok.Kind() != '0' {
			continue
		}
		lit := tok.String()
		if strings.ContainsAny(lit, ".eE") {
			continue
		}
		if n, err := strconv.ParseInt(lit, 10, 64); err != nil || n > MaxSafeInteger || n < -MaxSafeInteger {
			return fmt.Errorf("%w: %s", ErrUnsafeInteger, lit)
		}
	}
}
