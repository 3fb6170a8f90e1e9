package vault

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"

	"github.com/otpcash/otpcash/internal/strictcbor"
	"github.com/otpcash/otpcash/internal/strictjson"
)

// The record form is the plaintext a record seals. Form 2 is one version
// byte followed by deterministic CBOR (RFC 8949 section 4.2.1); form 1,
// written by earlier releases, is JSON, and so opens with '{' or another
// JSON value's first byte, never with recordCBOR. Form 1 records are read
// strictly and are written in form 2 the next time they are written.
//
// The signed forms inside records (coins, chains, receipts, certificates)
// are otp's domain types, encoded field by field under their JSON names:
// their checksums and signatures are over their canonical JSON, computed
// from the decoded values, and a record's round trip gives back the same
// values (TestRecordRoundTrip).
const recordCBOR = 0x02

// ErrRecordForm reports a record plaintext in no known form.
var ErrRecordForm = errors.New("unknown record form")

var (
	recordEnc = mustRecordEnc()
	recordDec = mustRecordDec()
)

func mustRecordEnc() cbor.UserBufferEncMode {
	o := cbor.CoreDetEncOptions()
	// Times keep their nanoseconds and their offset, as in JSON: a coin's
	// expiry is part of what its checksum covers.
	o.Time = cbor.TimeRFC3339Nano
	m, err := o.UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustRecordDec() cbor.DecMode {
	// A record holds at most maxKeys keys of a withdrawal; a coin's step
	// arguments are JSON values, and decode as encoding/json decodes them.
	o := strictcbor.Options(32, 2*maxKeys, 1024)
	o.DefaultMapType = reflect.TypeFor[map[string]any]()
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// marshalRecord returns the plaintext of v in the current record form.
func marshalRecord(v any) ([]byte, error) {
	// Encoded after the version byte, in place: a coin record is about
	// 1.8 kB, and copying it once more shows in a batch.
	buf := bytes.NewBuffer(append(make([]byte, 0, 2048), recordCBOR))
	if err := recordEnc.MarshalToBuffer(v, buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unmarshalRecord decodes a record plaintext of either form into v.
func unmarshalRecord(plain []byte, v any) error {
	if len(plain) == 0 {
		return fmt.Errorf("%w: empty", ErrRecordForm)
	}
	switch plain[0] {
	case recordCBOR:
		return recordDec.Unmarshal(plain[1:], v)
	case '{', '[', '"', 'n':
		// Form 1: JSON objects, and the byte strings (as base64 strings)
		// and nulls of settings and the identity.
		return strictjson.Unmarshal(plain, v)
	default:
		return fmt.Errorf("%w: version byte %#02x", ErrRecordForm, plain[0])
	}
}
