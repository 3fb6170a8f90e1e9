package otp

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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

// Run is one execution of a coin program over a batch of coins that all
// carry the same program.
type Run struct {
	Verifier *Verifier
	Now      time.Time
	Peer     Peer
	Purse    Purse
	Coins    []Sandbox // held coins to pay
	Payment  Payment   // what conditions see of the payment

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
	return forEach(len(r.Coins), func(i int) error {
		s := &r.Coins[i]
		if err := s.Coin.CheckIntegrity(); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		if err := r.Verifier.verifyIssuerSignature(&s.Coin); err != nil {
			return fmt.Errorf("coin %.12s: %w", s.Coin.Data.Token, err)
		}
		return r.Verifier.verifyChain(s)
	})
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
	}
	err = forEach(len(keys), func(i int) error { return r.Verifier.VerifyExchangeKey(&keys[i], r.Now) })
	if err != nil {
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
		return CompileConditions(c.Data.Conditions)
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
	if err := VerifyAcks(r.Sealed, acks); err != nil {
		return err
	}
	r.Acks = acks
	return nil
}

func destroyOTP(ctx context.Context, r *Run) error {
	return r.Purse.Destroy(ctx, r.Sealed, r.Acks)
}
