package otp

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// Errors of programmable conditions.
var (
	// ErrCondition: a coin's condition is false, or could not be
	// evaluated, for this payment.
	ErrCondition = errors.New("condition not met")
	// ErrBadCondition: a condition does not compile, is not boolean or is
	// over a limit. The bank refuses such a program when it loads its
	// configuration; a wallet refuses a coin that carries one.
	ErrBadCondition = errors.New("invalid condition")
	// ErrBadAttrs: payee attributes over the limits or malformed.
	ErrBadAttrs = errors.New("invalid payee attributes")
)

// The names a condition can use. They are part of the format: a coin
// signed today must mean the same to every later wallet.
const (
	varCoinValue     = "coin.value"     // int: minor units
	varCoinCurrency  = "coin.currency"  // string: ISO 4217
	varCoinIssuer    = "coin.issuer"    // string
	varCoinProgram   = "coin.program"   // string: the program's name
	varCoinHops      = "coin.hops"      // int: transfers, counting the one judged
	varCoinExpires   = "coin.expires"   // timestamp: payable until
	varPayee         = "payee"          // map(string, string): bank-certified attributes
	varPaymentAmount = "payment.amount" // int: minor units of the whole payment; 0 when unknown
	varPaymentMemo   = "payment.memo"   // string: the payer's memo; "" when unknown
	varNow           = "now"            // timestamp: the evaluator's clock
)

// Limits on conditions. Programs within them cost about a microsecond a
// coin to check; the bank refuses anything over them when it loads its
// configuration, so a payment never meets a condition it cannot afford.
const (
	maxConditions      = 16   // per program
	maxConditionLength = 1024 // code points of one expression
	maxConditionNodes  = 256  // syntax nodes of one expression, after macro expansion
	maxConditionDepth  = 16   // nesting of one expression
	maxConditionCost   = 1000 // CEL cost units: the worst case estimated at compile time, and the limit at run time
	maxAttrs           = 16   // certified attributes of an exchange key
	maxAttrLength      = 64   // bytes of an attribute key or value
	maxMemoLength      = 1024 // bytes of a memo, as p2p bounds it
	maxIssuerLength    = 128
)

// conditionEnv is the one CEL environment of conditions.
var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varCoinValue, cel.IntType),
		cel.Variable(varCoinCurrency, cel.StringType),
		cel.Variable(varCoinIssuer, cel.StringType),
		cel.Variable(varCoinProgram, cel.StringType),
		cel.Variable(varCoinHops, cel.IntType),
		cel.Variable(varCoinExpires, cel.TimestampType),
		cel.Variable(varPayee, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(varPaymentAmount, cel.IntType),
		cel.Variable(varPaymentMemo, cel.StringType),
		cel.Variable(varNow, cel.TimestampType),
		cel.ParserExpressionSizeLimit(maxConditionLength),
		cel.ParserRecursionLimit(maxConditionDepth),
		cel.ExpressionNodeLimit(maxConditionNodes),
		cel.DefaultUTCTimeZone(true),
	)
})

// sizes bounds the inputs for the compile-time cost estimate: without
// bounds CEL assumes strings and maps of any size.
type sizes struct{}

func (sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	switch {
	case p[0] == varPayee && len(p) == 1:
		return &cost.SizeEstimate{Min: 0, Max: maxAttrs}
	case p[0] == varPayee:
		return &cost.SizeEstimate{Min: 0, Max: maxAttrLength}
	case p[0] == varPaymentMemo:
		return &cost.SizeEstimate{Min: 0, Max: maxMemoLength}
	case p[0] == varCoinCurrency:
		return &cost.SizeEstimate{Min: 3, Max: 3}
	case p[0] == varCoinIssuer || p[0] == varCoinProgram:
		return &cost.SizeEstimate{Min: 0, Max: maxIssuerLength}
	}
	return nil
}

func (sizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// CheckAttrs checks attributes a bank is to certify: at most maxAttrs,
// keys lowercase identifiers (so a condition can say payee.key), keys and
// values 1 to maxAttrLength bytes of printable UTF-8. The cost estimate of
// conditions counts on these bounds.
func CheckAttrs(attrs map[string]string) error {
	if len(attrs) > maxAttrs {
		return fmt.Errorf("%w: %d attributes, at most %d", ErrBadAttrs, len(attrs), maxAttrs)
	}
	for k, v := range attrs {
		if len(k) == 0 || len(k) > maxAttrLength || !isIdent(k) {
			return fmt.Errorf("%w: key %q: want a lowercase identifier of at most %d bytes", ErrBadAttrs, k, maxAttrLength)
		}
		if len(v) == 0 || len(v) > maxAttrLength || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return fmt.Errorf("%w: %s: want 1 to %d bytes of printable text", ErrBadAttrs, k, maxAttrLength)
		}
	}
	return nil
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// condition is one compiled expression.
type condition struct {
	src  string
	prog cel.Program
	seen []string // the names it reads, for the refusal message: "payee.category", "coin.hops"
}

// compiled caches compiled conditions by source text: every coin of a
// program carries the same expressions, so each is compiled once. Only
// coins whose issuer signature verified reach the cache, and it stops
// growing at maxCached entries (beyond that, expressions are compiled on
// every use), so a flood of coins cannot fill memory.
var (
	compiled  sync.Map // string -> *condition
	nCompiled atomic.Int64
)

const maxCached = 1024

// compileConditions checks a program's conditions against the
// environment and the limits, compiling each once. The error names the
// condition by its index and the position in it.
func compileConditions(srcs []string) error {
	if len(srcs) > maxConditions {
		return fmt.Errorf("%w: %d conditions, at most %d", ErrBadCondition, len(srcs), maxConditions)
	}
	for i, src := range srcs {
		if _, err := compileCondition(src); err != nil {
			return fmt.Errorf("condition %d: %w", i, err)
		}
	}
	return nil
}

func compileCondition(src string) (*condition, error) {
	if c, ok := compiled.Load(src); ok {
		return c.(*condition), nil
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, fmt.Errorf("%w: environment: %v", ErrBadCondition, err)
	}
	if n := len([]rune(src)); n > maxConditionLength {
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrBadCondition, n, maxConditionLength)
	}
	tree, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: %q: %s", ErrBadCondition, src, issues(iss))
	}
	if !tree.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%w: %q: yields %s, want bool", ErrBadCondition, src, tree.OutputType())
	}
	est, err := env.EstimateCost(tree, sizes{})
	if err != nil {
		return nil, fmt.Errorf("%w: %q: cost: %v", ErrBadCondition, src, err)
	}
	if est.Max > maxConditionCost {
		return nil, fmt.Errorf("%w: %q: may cost %d, over the limit of %d", ErrBadCondition, src, est.Max, maxConditionCost)
	}
	prog, err := env.Program(tree, cel.CostLimit(maxConditionCost), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadCondition, src, err)
	}
	c := &condition{src: src, prog: prog, seen: names(tree.NativeRep())}
	if nCompiled.Add(1) <= maxCached {
		compiled.Store(src, c)
	}
	return c, nil
}

// issues formats CEL's compile errors as "line:column: message".
func issues(iss *cel.Issues) string {
	var parts []string
	for _, e := range iss.Errors() {
		parts = append(parts, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
	}
	return strings.Join(parts, "; ")
}

// names lists the variables an expression reads, with the attribute for
// a payee.x selection, in a stable order.
func names(tree *ast.AST) []string {
	refs := tree.ReferenceMap()
	set := map[string]bool{}
	ast.PreOrderVisit(ast.NavigateAST(tree), ast.NewExprVisitor(func(e ast.Expr) {
		r, ok := refs[e.ID()]
		if !ok || r.Name == "" {
			return
		}
		set[r.Name] = true
	}))
	// payee.category reads the attribute category: show it rather than
	// the whole map.
	ast.PreOrderVisit(ast.NavigateAST(tree), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.SelectKind {
			return
		}
		sel := e.AsSelect()
		if op := sel.Operand(); op.Kind() == ast.IdentKind && refs[op.ID()] != nil && refs[op.ID()].Name == varPayee {
			set[varPayee+"."+sel.FieldName()] = true
		}
	}))
	var out []string
	attrs := false
	for n := range set {
		out = append(out, n)
		attrs = attrs || strings.HasPrefix(n, varPayee+".")
	}
	// The attributes read say more than the whole map beside them.
	if attrs {
		out = slices.DeleteFunc(out, func(n string) bool { return n == varPayee })
	}
	sort.Strings(out)
	return out
}

// Payment is what a condition knows of the payment a coin is part of.
type Payment struct {
	Amount int64  // minor units of the whole payment
	Memo   string // the payer's memo
}

// Judgement is the transfer a condition judges: the coin, how many
// transfers it will have made once this one is done, the certified
// attributes of the payee's exchange key, the payment and the time.
type Judgement struct {
	Coin    *Coin
	Hops    int
	Payee   map[string]string
	Payment Payment
	Now     time.Time
}

// activation is a Judgement as CEL evaluates it: the variables of a
// condition, resolved without building a map per evaluation.
type activation Judgement

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	j := (*Judgement)(a)
	switch name {
	case varCoinValue:
		return types.Int(j.Coin.Data.Value), true
	case varCoinCurrency:
		return types.String(j.Coin.Data.Currency), true
	case varCoinIssuer:
		return types.String(j.Coin.Data.Issuer), true
	case varCoinProgram:
		return types.String(j.Coin.Data.Program), true
	case varCoinHops:
		return types.Int(j.Hops), true
	case varCoinExpires:
		return types.Timestamp{Time: j.Coin.Data.Expires}, true
	case varPayee:
		return types.NewStringStringMap(types.DefaultTypeAdapter, j.Payee), true
	case varPaymentAmount:
		return types.Int(j.Payment.Amount), true
	case varPaymentMemo:
		return types.String(j.Payment.Memo), true
	case varNow:
		return types.Timestamp{Time: j.Now.UTC()}, true
	}
	return nil, false
}

// Parent implements interpreter.Activation: a Judgement is the only one.
func (a *activation) Parent() interpreter.Activation { return nil }

// value formats a name's value for a refusal message.
func (j *Judgement) value(name string) string {
	if attr, ok := strings.CutPrefix(name, varPayee+"."); ok {
		v, ok := j.Payee[attr]
		if !ok {
			return "<absent>"
		}
		return strconv.Quote(v)
	}
	v, _ := (*activation)(j).ResolveName(name)
	switch v := v.(type) {
	case types.String:
		return strconv.Quote(string(v))
	case types.Timestamp:
		return v.Time.Format(time.RFC3339)
	case ref.Val:
		if m, ok := v.Value().(map[string]string); ok {
			return fmt.Sprint(m)
		}
		return fmt.Sprint(v.Value())
	}
	return "<unknown>"
}

// ConditionError is a refused coin: the expression and the values it saw.
type ConditionError struct {
	Token     string
	Condition string
	Seen      string // "payee.category = \"electronics\""
	Err       error  // an evaluation error, or nil when the condition was false
}

func (e *ConditionError) Error() string {
	msg := fmt.Sprintf("coin %.12s: %s: %s: %s", e.Token, ErrCondition, e.Condition, e.Seen)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *ConditionError) Unwrap() error { return ErrCondition }

// Check evaluates every condition of j.Coin and returns a *ConditionError
// for the first that is not true. A condition that does not compile here
// refuses the coin (ErrBadCondition): fail closed.
func (j *Judgement) Check() error {
	for _, src := range j.Coin.Data.Conditions {
		c, err := compileCondition(src)
		if err != nil {
			return fmt.Errorf("coin %.12s: %w", j.Coin.Data.Token, err)
		}
		out, _, err := c.prog.Eval((*activation)(j))
		if err == nil && out == types.True {
			continue
		}
		seen := make([]string, len(c.seen))
		for i, n := range c.seen {
			seen[i] = n + " = " + j.value(n)
		}
		return &ConditionError{Token: j.Coin.Data.Token, Condition: src, Seen: strings.Join(seen, ", "), Err: err}
	}
	return nil
}

// CheckConditions judges the transfer that brought s to its current
// holder: hops is its chain length and the payee the attributes of the
// last exchange key (none for a coin never transferred). The payee uses it
// before acknowledging a coin, the bank at deposit.
func (s *Sandbox) CheckConditions(p Payment, now time.Time) error {
	j := Judgement{Coin: &s.Coin, Hops: len(s.Chain), Payment: p, Now: now}
	if n := len(s.Chain); n > 0 {
		j.Payee = s.Chain[n-1].To.Attrs
	}
	return j.Check()
}
