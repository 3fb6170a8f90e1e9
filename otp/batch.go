package otp

import (
	"crypto/ed25519"
	"fmt"
	"runtime"
	"slices"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/otpcash/otpcash/internal/parallel"
)

// sigBatch collects Ed25519 signatures to verify together. A payment
// checks several per coin (links, certificates, receipts); checked as one
// batch they cost about half as much as one by one. Batch and single
// verification accept exactly the same signatures (see verify), so
// batching changes the cost, never the answer.
type sigBatch struct{ checks []sigCheck }

// sigCheck is one signature and how to name it when it fails.
type sigCheck struct {
	pub  ed25519.PublicKey
	msg  []byte
	sig  []byte
	name func(error) error
}

// add queues the signature sig by pub over label and payload, to be named
// by name if it fails. A signature that is not 64 bytes of text is refused
// now, as verify refuses it, and not named: the caller names it as it
// names its other errors.
func (b *sigBatch) add(name func(error) error, pub ed25519.PublicKey, sig, label string, payload ...[]byte) error {
	s, err := decodeFixed(sig, ed25519.SignatureSize)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	b.checks = append(b.checks, sigCheck{pub: pub, msg: signed(label, payload...), sig: s, name: name})
	return nil
}

// verify checks every queued signature, in one batch per CPU, and returns
// the error, named by its sigCheck, of the first one that fails.
func (b *sigBatch) verify() error {
	n := len(b.checks)
	chunks := min(runtime.GOMAXPROCS(0), n)
	return parallel.ForEach(chunks, func(c int) error {
		return verifyChecks(b.checks[c*n/chunks : (c+1)*n/chunks])
	})
}

// verifyChecks verifies cs as one batch, or one by one if there are fewer
// than minBatch (the same rule either way), and names the first that fails,
// as a single check would have named it.
func verifyChecks(cs []sigCheck) error {
	failed := failures(cs)
	for i := range failed {
		if failed[i] {
			return cs[i].name(ErrSignature)
		}
	}
	return nil
}

// failures reports which signatures of cs fail, nil when none does. When
// the batch equation fails, voi's BatchVerifier checks each entry alone and
// says which failed; should it name none, every entry is checked alone
// here, so that the answer is always the single rule's.
func failures(cs []sigCheck) []bool {
	if len(cs) >= minBatch {
		ok, valid := verifyBatch(cs)
		if ok {
			return nil
		}
		if slices.Contains(valid, false) {
			failed := make([]bool, len(cs))
			for i, v := range valid {
				failed[i] = !v
			}
			return failed
		}
	}
	var failed []bool
	for i := range cs {
		if !verifyOne(cs[i].pub, cs[i].msg, cs[i].sig) {
			if failed == nil {
				failed = make([]bool, len(cs))
			}
			failed[i] = true
		}
	}
	return failed
}

// minBatch is the smallest batch that costs less than its single checks
// (BenchmarkEd25519: a batch of 2 costs more per signature than one
// single check, a batch of 4 less).
const minBatch = 4

// verifyBatch is the batch equation over cs, and each entry's own answer
// when it fails.
func verifyBatch(cs []sigCheck) (ok bool, valid []bool) {
	bv := voi.NewBatchVerifierWithCapacity(len(cs))
	for i := range cs {
		bv.AddWithOptions(voi.PublicKey(cs[i].pub), cs[i].msg, cs[i].sig, zip215)
	}
	return bv.Verify(nil)
}

// named returns a name for a sigCheck: format and args, then the error.
func named(format string, args ...any) func(error) error {
	return func(err error) error { return fmt.Errorf(format+": %w", append(args, err)...) }
}

// within names with inner, then outer.
func within(outer, inner func(error) error) func(error) error {
	return func(err error) error { return outer(inner(err)) }
}

// verifyAll verifies the signatures of every batch in bs as one batch, and
// names the first that fails in the order of bs.
func verifyAll(bs []sigBatch) error {
	n := 0
	for i := range bs {
		n += len(bs[i].checks)
	}
	all := sigBatch{checks: make([]sigCheck, 0, n)}
	for i := range bs {
		all.checks = append(all.checks, bs[i].checks...)
	}
	return all.verify()
}

// verifyEach verifies the signatures of every batch in bs together, on the
// calling goroutine, and returns for each batch the error of its first
// check that fails, nil for a batch whose every signature holds: many
// independent checks (the coins of one deposit) share the cost of one
// batch, and each still gets its own answer.
func verifyEach(bs []sigBatch) []error {
	var all []sigCheck
	var owner []int
	for i := range bs {
		for _, c := range bs[i].checks {
			all, owner = append(all, c), append(owner, i)
		}
	}
	errs := make([]error, len(bs))
	for j, f := range failures(all) {
		if f && errs[owner[j]] == nil {
			errs[owner[j]] = all[j].name(ErrSignature)
		}
	}
	return errs
}
