package otp

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/internal/parallel"
)

// The paper's seven base-level steps. Every coin's callMethod lists each of
// them exactly once, in this order.
const (
	StepCheckIntegrity  = "checkIntegrityOfOTP"
	StepCheckToken      = "checkTokenFormat"
	StepCheckCallMethod = "checkCallMethod"
	StepSetupConnection = "setupConnection"
	StepBuildSandbox    = "buildSandbox"
	StepSendOTP         = "sendOTP"
	StepDestroyOTP      = "destroyOTP"
)

// StepCheckConditions evaluates the coin's conditions against the payee's
// certified attributes before the coin is sealed. It is optional in
// general, and required in a coin that carries conditions.
const StepCheckConditions = "checkConditions"

// GeneralProgramName is the program of plain cash: no conditions.
const GeneralProgramName = "general"

// Program is a coin program as a bank defines it: a name, the step list
// (callMethod) and the conditions (CEL expressions) its coins carry.
type Program struct {
	Name       string
	Steps      []Step
	Conditions []string
}

// GeneralProgram is the paper's seven steps and no conditions.
func GeneralProgram() Program {
	return Program{Name: GeneralProgramName, Steps: DefaultProgram()}
}

// Validate checks the step list (see ValidateProgram), that conditions
// come with the step that checks them, and compiles the conditions within
// the limits.
func (p Program) Validate() error {
	if p.Name == "" {
		return fmt.Errorf("program: %w: empty name", ErrBadCondition)
	}
	return validateCoinProgram(&Coin{CallMethod: p.Steps, Data: Data{Conditions: p.Conditions}}, true)
}

// Peer is the payee as the payer's executor sees it: an open, authenticated
// offline session.
type Peer interface {
	// ExchangeKeys asks the payee for n certified exchange keys.
	ExchangeKeys(ctx context.Context, n int) ([]ExchangeKey, error)
	// Send delivers sealed coins and returns the payee's receipts.
	Send(ctx context.Context, sealed []Sandbox) ([]Ack, error)
}

// Purse is the payer's vault as the executor sees it. Private keys never
// leave it.
type Purse interface {
	// Seal transfers each coin to the matching exchange key, signing with
	// the coin's holder key inside the vault. In one durable write it
	// destroys those holder keys and records the sealed coins as
	// pending-out, so a coin is never both spendable and in flight.
	Seal(ctx context.Context, coins []Sandbox, to []ExchangeKey) ([]Sandbox, error)
	// Destroy records the sealed coins as spent, keeping each complete
	// sandbox with its receipt as proof of payment.
	Destroy(ctx context.Context, sealed []Sandbox, acks []Ack) error
}

// AuthenticatedPurse is a Purse that vouches for the coins it seals and
// the receipts it records, which lets the executor skip signature checks
// the purse has made or will make anyway (each Ed25519 check is tens of
// microseconds, several per coin). A purse that returns true from
// Authenticated promises that:
//
//   - every coin it stores was verified in full (issuer signature, every
//     chain link) when it entered, it keeps the coins authenticated (the
//     vault's records are sealed with an AEAD), and Seal refuses any coin
//     that is not exactly its stored copy, so the coin the executor checks
//     is the coin it signs away;
//   - Destroy verifies every receipt against the sealed coin before it
//     records it, and records nothing when one is bad.
//
// For such a purse checkIntegrityOfOTP is the checksum comparison, the
// structural checks, the issuer-key and revocation checks (the catalogue
// and the revocation list may have changed since the coin came in), and
// sendOTP leaves the receipts to Destroy. Any other purse gets every check.
type AuthenticatedPurse interface {
	Purse
	Authenticated() bool
}

// authenticated reports whether r's purse vouches for its coins.
func (r *Run) authenticated() bool {
	ap, ok := r.Purse.(AuthenticatedPurse)
	return ok && ap.Authenticated()
}

// PipelinedPeer is a Peer that can deliver sealed coins without waiting for
// their receipts, so that the payer seals the next chunk of a batch while
// the payee checks and stores the previous one.
type PipelinedPeer interface {
	Peer
	// Post delivers sealed coins and returns without waiting for the
	// receipts.
	Post(ctx context.Context, sealed []Sandbox) error
	// Receipts returns the receipts for the oldest posted coins whose
	// receipts have not been returned yet, one per coin, in order.
	Receipts(ctx context.Context) ([]Ack, error)
}

// Pipeline tunes how Execute splits a batch for a PipelinedPeer. A zero
// field takes its default.
type Pipeline struct {
	// Chunk is the number of coins per chunk (64); a batch of fewer than
	// two chunks is not pipelined, nor is any when Chunk is negative.
	Chunk int
	// Depth is the most chunks a batch is split into (4): every chunk
	// costs a durable write on each side (two on the payer's).
	Depth int
}

const (
	defaultPipelineChunk = 64
	defaultPipelineDepth = 4
)

// chunkSize is the chunk size for a batch of n coins: p.Chunk, or more for
// a batch of more than p.Depth chunks; 0 for no pipeline.
func (p Pipeline) chunkSize(n int) int {
	chunk, depth := cmp.Or(p.Chunk, defaultPipelineChunk), cmp.Or(p.Depth, defaultPipelineDepth)
	if chunk <= 0 || depth < 2 || n < 2*chunk {
		return 0
	}
	return max(chunk, (n+depth-1)/depth)
}

// Run is one execution of a coin program over a batch of coins that all
// carry the same program.
type Run struct {
	Verifier *Verifier
	Now      time.Time
	Peer     Peer
	Purse    Purse
	Coins    []Sandbox // held coins to pay
	Payment  Payment   // what conditions see of the payment
	Pipeline Pipeline  // how a batch for a PipelinedPeer is split

	keys   []ExchangeKey
	Sealed []Sandbox // set by buildSandbox
	Acks   []Ack     // set by sendOTP
}

// stepFunc is a base-level function: one step of a coin program.
type stepFunc func(ctx context.Context, r *Run) error

type stepDef struct {
	rank int // a program lists steps in increasing rank
	fn   stepFunc
}

// registry holds the base-level functions a coin program may name.
var registry = map[string]stepDef{
	StepCheckIntegrity:  {10, checkIntegrity},
	StepCheckToken:      {20, checkToken},
	StepCheckCallMethod: {30, checkCallMethod},
	StepSetupConnection: {40, setupConnection},
	StepCheckConditions: {50, checkConditions}, // needs the payee's exchange keys
	StepBuildSandbox:    {60, buildSandbox},
	StepSendOTP:         {70, sendOTP},
	StepDestroyOTP:      {80, destroyOTP},
}

var requiredSteps = []string{
	StepCheckIntegrity, StepCheckToken, StepCheckCallMethod,
	StepSetupConnection, StepBuildSandbox, StepSendOTP, StepDestroyOTP,
}

// DefaultProgram returns the paper's seven steps in order.
func DefaultProgram() []Step {
	p := make([]Step, len(requiredSteps))
	for i, name := range requiredSteps {
		p[i] = Step{Method: name}
	}
	return p
}

// Steps returns the paper's seven steps with the optional steps extra,
// each in its place by the registry's order. An unknown step is an error
// naming it.
func Steps(extra ...string) ([]Step, error) {
	steps := DefaultProgram()
	for _, name := range extra {
		d, ok := registry[name]
		if !ok {
			return nil, fmt.Errorf("step %q: %w", name, ErrUnknownStep)
		}
		i := slices.IndexFunc(steps, func(s Step) bool { return registry[s.Method].rank >= d.rank })
		if i < 0 {
			i = len(steps)
		}
		if i < len(steps) && steps[i].Method == name {
			return nil, fmt.Errorf("step %q: %w: listed twice", name, ErrMisplacedStep)
		}
		steps = slices.Insert(steps, i, Step{Method: name})
	}
	return steps, nil
}

// ValidateProgram checks a callMethod list: every step known, none twice,
// each in its place, none of the required steps missing, no arguments for a
// step that takes none. The error names the offending step.
func ValidateProgram(steps []Step) error {
	seen := make(map[string]bool, len(steps))
	prev := ""
	prevRank := 0
	for i, s := range steps {
		d, ok := registry[s.Method]
		if !ok {
			return fmt.Errorf("step %d %q: %w", i, s.Method, ErrUnknownStep)
		}
		if len(s.Args) > 0 {
			return fmt.Errorf("step %d %q: %w: takes no arguments", i, s.Method, ErrStepArgs)
		}
		if seen[s.Method] {
			return fmt.Errorf("step %d %q: %w: listed twice", i, s.Method, ErrMisplacedStep)
		}
		if d.rank <= prevRank {
			return fmt.Errorf("step %d %q: %w: must come before %q", i, s.Method, ErrMisplacedStep, prev)
		}
		seen[s.Method] = true
		prev, prevRank = s.Method, d.rank
	}
	for _, name := range requiredSteps {
		if !seen[name] {
			return fmt.Errorf("step %q: %w", name, ErrMissingStep)
		}
	}
	return nil
}

// Execute runs the program the coins carry, step by step. The whole program
// is validated before the first step runs, so an unknown, missing or
// misplaced step stops the run before anything changes.
func Execute(ctx context.Context, r *Run) error {
	if len(r.Coins) == 0 {
		return fmt.Errorf("execute: no coins")
	}
	program := r.Coins[0].Coin.CallMethod
	if err := validateCoinProgram(&r.Coins[0].Coin, false); err != nil {
		return fmt.Errorf("execute coin %.12s: %w", r.Coins[0].Coin.Data.Token, err)
	}
	for i, s := range program {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("execute %s: %w", s.Method, err)
		}
		if pp, ok := r.Peer.(PipelinedPeer); ok && s.Method == StepBuildSandbox && isTail(program[i:]) {
			if size := r.Pipeline.chunkSize(len(r.Coins)); size > 0 {
				return r.pipeline(ctx, pp, size)
			}
		}
		if err := registry[s.Method].fn(ctx, r); err != nil {
			return fmt.Errorf("%s: %w", s.Method, err)
		}
		fault.Point(fault.PayerStep(s.Method))
	}
	return nil
}

// isTail reports whether steps are buildSandbox, sendOTP, destroyOTP and
// nothing else: the steps a pipeline runs chunk by chunk.
func isTail(steps []Step) bool {
	return len(steps) == 3 && steps[0].Method == StepBuildSandbox &&
		steps[1].Method == StepSendOTP && steps[2].Method == StepDestroyOTP
}

// pipeline runs buildSandbox, sendOTP and destroyOTP over the batch in
// chunks of size coins, each chunk through the three steps in order, with
// the same durable writes as a whole batch (P1 before a chunk is sent, P2
// after its receipts), but overlapped: the payer seals and posts chunk k+1
// before it waits for the receipts of chunk k, so that the payee checks and
// stores chunk k meanwhile. There is still no per-coin round trip. Each
// step's fault point is reached first as it would be for a single batch:
// buildSandbox after the first chunk is sealed and before it is sent,
// sendOTP when its receipts are read and not yet recorded, destroyOTP when
// they are recorded. On an error the chunks whose receipts were recorded
// are spent and the other sealed coins stay pending-out, to be re-sent.
func (r *Run) pipeline(ctx context.Context, pp PipelinedPeer, size int) error {
	n := len(r.Coins)
	trusted := r.authenticated()
	settle := func(lo, hi int) error {
		acks, err := pp.Receipts(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", StepSendOTP, err)
		}
		if len(acks) != hi-lo {
			return fmt.Errorf("%s: payee acknowledged %d of %d coins", StepSendOTP, len(acks), hi-lo)
		}
		if !trusted {
			if err := verifyAcks(r.Sealed[lo:hi], acks); err != nil {
				return fmt.Errorf("%s: %w", StepSendOTP, err)
			}
		}
		fault.Point(fault.PayerStep(StepSendOTP))
		if err := r.Purse.Destroy(ctx, r.Sealed[lo:hi], acks); err != nil {
			return fmt.Errorf("%s: %w", StepDestroyOTP, err)
		}
		r.Acks = append(r.Acks, acks...)
		fault.Point(fault.PayerStep(StepDestroyOTP))
		return nil
	}
	prev := -1 // start of the chunk posted and not yet settled
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("execute %s: %w", StepBuildSandbox, err)
		}
		sealed, err := r.Purse.Seal(ctx, r.Coins[lo:hi], r.keys[lo:hi])
		if err != nil {
			return fmt.Errorf("%s: %w", StepBuildSandbox, err)
		}
		r.Sealed = append(r.Sealed, sealed...)
		fault.Point(fault.PayerStep(StepBuildSandbox))
		if err := pp.Post(ctx, sealed); err != nil {
			// A payee that refused the previous chunk has closed the
			// session; its reason is waiting to be read.
			if prev >= 0 {
				if serr := settle(prev, lo); serr != nil {
					return serr
				}
			}
			return fmt.Errorf("%s: %w", StepSendOTP, err)
		}
		if prev >= 0 {
			if err := settle(prev, lo); err != nil {
				return err
			}
		}
		prev = lo
	}
	return settle(prev, n)
}

func checkIntegrity(_ context.Context, r *Run) error {
	trusted := r.authenticated()
	bs := make([]sigBatch, len(r.Coins))
	err := parallel.ForEach(len(r.Coins), func(i int) error {
		s := &r.Coins[i]
		if err := s.Coin.checkIntegrity(); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		if trusted {
			// The purse verified the signatures when the coin came in and
			// seals only its own authenticated copy (see
			// AuthenticatedPurse): what is left to check is what may have
			// changed since, the catalogue and the revocations.
			if err := r.Verifier.checkIssuerKey(&s.Coin); err != nil {
				return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
			}
			return r.Verifier.checkRevoked(s)
		}
		if err := r.Verifier.verifyIssuerSignature(&s.Coin, &bs[i]); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		return r.Verifier.checkChain(s, false, &bs[i])
	})
	if err != nil {
		return err
	}
	return verifyAll(bs)
}

func checkToken(_ context.Context, r *Run) error {
	for i := range r.Coins {
		c := &r.Coins[i].Coin
		if _, err := c.Serial(); err != nil {
			return err
		}
		if err := CheckPayable(c, r.Now); err != nil {
			return err
		}
	}
	return nil
}

// checkCallMethod holds every coin of the batch to the program being run:
// the order of the steps was checked before the run began. It compares
// steps, not their JSON: encoding every coin's program cost 20 us a coin,
// on one core, before the first coin could be sealed.
func checkCallMethod(_ context.Context, r *Run) error {
	want := r.Coins[0].Coin.CallMethod
	for i := range r.Coins[1:] {
		if c := &r.Coins[i+1].Coin; !sameSteps(c.CallMethod, want) {
			return fmt.Errorf("coin %.12s: %w: carries a different program from the rest of the batch", c.Data.Token, ErrMisplacedStep)
		}
	}
	return nil
}

func setupConnection(ctx context.Context, r *Run) error {
	keys, err := r.Peer.ExchangeKeys(ctx, len(r.Coins))
	if err != nil {
		return err
	}
	if len(keys) != len(r.Coins) {
		return fmt.Errorf("payee sent %d exchange keys for %d coins", len(keys), len(r.Coins))
	}
	seen := make(map[string]bool, len(keys))
	for i := range keys {
		if seen[keys[i].Pub] {
			return fmt.Errorf("payee sent exchange key %.12s twice", keys[i].Pub)
		}
		seen[keys[i].Pub] = true
	}
	if err := r.Verifier.verifyExchangeKeys(keys, r.Now); err != nil {
		return err
	}
	r.keys = keys
	return nil
}

// validateCoinProgram checks a coin's step list, and that a coin with
// conditions lists the step that checks them: a program that forgot it
// would let the payer seal a coin the payee and bank must refuse. compile
// also compiles the conditions within the limits (the bank does, for a
// program it loads; verifiers compile when they evaluate).
func validateCoinProgram(c *Coin, compile bool) error {
	if err := ValidateProgram(c.CallMethod); err != nil {
		return err
	}
	if len(c.Data.Conditions) > 0 && !slices.ContainsFunc(c.CallMethod, func(s Step) bool { return s.Method == StepCheckConditions }) {
		return fmt.Errorf("step %q: %w: there are conditions to check", StepCheckConditions, ErrMissingStep)
	}
	if compile {
		return compileConditions(c.Data.Conditions)
	}
	return nil
}

// checkConditions judges each coin's transfer to the exchange key the payee
// sent for it, before anything is sealed: a refused coin stays held.
func checkConditions(_ context.Context, r *Run) error {
	for i := range r.Coins {
		s := &r.Coins[i]
		j := Judgement{Coin: &s.Coin, Hops: len(s.Chain) + 1, Payee: r.keys[i].Attrs, Payment: r.Payment, Now: r.Now}
		if err := j.Check(); err != nil {
			return err
		}
	}
	return nil
}

func buildSandbox(ctx context.Context, r *Run) error {
	sealed, err := r.Purse.Seal(ctx, r.Coins, r.keys)
	if err != nil {
		return err
	}
	r.Sealed = sealed
	return nil
}

func sendOTP(ctx context.Context, r *Run) error {
	acks, err := r.Peer.Send(ctx, r.Sealed)
	if err != nil {
		return err
	}
	if len(acks) != len(r.Sealed) {
		return fmt.Errorf("payee acknowledged %d of %d coins", len(acks), len(r.Sealed))
	}
	// An authenticated purse verifies every receipt in Destroy, before it
	// records any, and a bad one leaves the whole batch pending-out, as a
	// refusal here would: checking twice would only double the cost.
	if !r.authenticated() {
		if err := verifyAcks(r.Sealed, acks); err != nil {
			return err
		}
	}
	r.Acks = acks
	return nil
}

func destroyOTP(ctx context.Context, r *Run) error {
	return r.Purse.Destroy(ctx, r.Sealed, r.Acks)
}
