// Package strictcbor holds the one CBOR profile of otpcash's compact
// formats (the p2p wire and the payment codes): deterministic encoding
// (RFC 8949 section 4.2.1) and a decoder that refuses what that encoding
// never writes or the format does not know: duplicate or unknown map
// keys, mis-cased field names, indefinite lengths, tags and invalid
// UTF-8, within the bounds its caller sets.
package strictcbor

import "github.com/fxamacker/cbor/v2"

// Enc is the deterministic encoder.
var Enc = mustEnc()

func mustEnc() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Dec returns the strict decoder that nests at most nested levels, and
// takes arrays of at most arrays elements and maps of at most pairs.
func Dec(nested, arrays, pairs int) cbor.DecMode {
	m, err := Options(nested, arrays, pairs).DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Options returns the options of Dec, for a format that adds to them
// (the vault's records decode step arguments as JSON does).
func Options(nested, arrays, pairs int) cbor.DecOptions {
	return cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		UTF8:              cbor.UTF8RejectInvalid,
		MaxNestedLevels:   nested,
		MaxArrayElements:  arrays,
		MaxMapPairs:       pairs,
	}
}
