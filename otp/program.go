package otp

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/internal/fault"
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

// Run is one execution of a coin program over a batch of coins that all
// carry the same program.
type Run struct {
	Verifier *Verifier
	Now      time.Time
	Peer     Peer
	Purse    Purse
	Coins    []Sandbox // held coins to pay

	keys   []ExchangeKey
	Sealed []Sandbox // set by buildSandbox
	Acks   []Ack     // set by sendOTP
}

// StepFunc is a base-level function: one step of a coin program.
type StepFunc func(ctx context.Context, r *Run) error

type stepDef struct {
	rank int // a program lists steps in increasing rank
	fn   StepFunc
}

// registry holds the base-level functions a coin program may name.
var registry = map[string]stepDef{
	StepCheckIntegrity:  {10, checkIntegrity},
	StepCheckToken:      {20, checkToken},
	StepCheckCallMethod: {30, checkCallMethod},
	StepSetupConnection: {40, setupConnection},
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
	if err := ValidateProgram(program); err != nil {
		return fmt.Errorf("execute coin %.12s: %w", r.Coins[0].Coin.Data.Token, err)
	}
	for _, s := range program {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("execute %s: %w", s.Method, err)
		}
		if err := registry[s.Method].fn(ctx, r); err != nil {
			return fmt.Errorf("%s: %w", s.Method, err)
		}
		fault.Point(fault.PayerStep(s.Method))
	}
	return nil
}

func checkIntegrity(_ context.Context, r *Run) error {
	for i := range r.Coins {
		s := &r.Coins[i]
		if err := s.Coin.CheckIntegrity(); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		if err := r.Verifier.verifyIssuerSignature(&s.Coin); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		if err := r.Verifier.verifyChain(s); err != nil {
			return err
		}
	}
	return nil
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
// the order of the steps was checked before the run began.
func checkCallMethod(_ context.Context, r *Run) error {
	want, err := Canonical(r.Coins[0].Coin.CallMethod)
	if err != nil {
		return err
	}
	for i := range r.Coins[1:] {
		got, err := Canonical(r.Coins[i+1].Coin.CallMethod)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("coin %.12s: %w: carries a different program from the rest of the batch", r.Coins[i+1].Coin.Data.Token, ErrMisplacedStep)
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
		if err := r.Verifier.VerifyExchangeKey(&keys[i], r.Now); err != nil {
			return err
		}
	}
	r.keys = keys
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
	for i := range acks {
		if err := r.Sealed[i].VerifyAck(acks[i]); err != nil {
			return err
		}
	}
	r.Acks = acks
	return nil
}

func destroyOTP(ctx context.Context, r *Run) error {
	return r.Purse.Destroy(ctx, r.Sealed, r.Acks)
}
