package vault

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/otpcash/otpcash/internal/amount"
	"github.com/otpcash/otpcash/otp"
)

// holding is one stay of a coin in this vault, from the transfer it arrived
// with (hop 0 when withdrawn) until it is deposited or its receipt is back.
// A coin paid away and later paid back starts a second holding, so the
// receipt of the first is kept.
type holding struct {
	Sandbox otp.Sandbox `json:"sandbox"`
	Hop     int         `json:"hop"`
	// Received is the receipt this vault signed; a payer who lost it and
	// sends the coin again gets the same one.
	Received *otp.Ack  `json:"received,omitempty"`
	Peer     string    `json:"peer,omitempty"`
	Ack      *otp.Ack  `json:"ack,omitempty"` // the payee's receipt
	Updated  time.Time `json:"updated"`
	// Reclaim lets the payer reclaim a sealed coin that never reached
	// its payee, after the coin's deposit deadline (otp/reclaim.go).
	Reclaim *reclaimRecord `json:"reclaim,omitempty"`
}

// reclaimRecord is a reclaim key and the authorisation the coin's holder
// key signed for it when it sealed the coin.
type reclaimRecord struct {
	Auth string `json:"auth"`
	Seed []byte `json:"seed"`
}

// Coin is a coin as the vault lists it. Peer is the payer of a received
// coin while it is held, and the payee once it is sealed; Ack is the
// payee's receipt of a spent coin.
type Coin struct {
	Sandbox otp.Sandbox
	State   State
	Peer    string
	Ack     *otp.Ack
	Updated time.Time
}

// serialRef indexes every holding of the coin with token.
func (t *tx) serialRef(token string) []byte { return t.s.id(refSerial, []byte(token)) }

func (t *tx) getHolding(token string, hop int) (id []byte, h holding, state State, err error) {
	id = t.s.id(kindCoin, []byte(token), binary.BigEndian.AppendUint32(nil, uint32(hop)))
	s, err := t.get(kindCoin, id, &h)
	return id, h, State(s), err
}

func (t *tx) putHolding(id []byte, state State, h *holding) error {
	h.Updated = t.now
	return t.put(kindCoin, id, string(state), t.serialRef(h.Sandbox.Coin.Data.Token), h)
}

// latest returns the most recent holding of the coin with token; ErrNotFound
// if this vault never held it. Earlier holdings all ended in a payment, so
// only the latest can be held.
func (t *tx) latest(token string) (row[holding], error) {
	rows, err := list[holding](t, kindCoin, byRef, t.serialRef(token))
	if err != nil {
		return row[holding]{}, err
	}
	if len(rows) == 0 {
		return row[holding]{}, ErrNotFound
	}
	return slices.MaxFunc(rows, func(a, b row[holding]) int { return cmp.Compare(a.val.Hop, b.val.Hop) }), nil
}

// extends reports whether full is prefix, possibly with more transfers.
// Both are compared as their JSON encodings would be: field by field when
// that is certain to give the same answer (sameCoin, sameLinks), which is
// most of the time and costs nothing, else as JSON (the formats' Go types
// encode deterministically, and JCS on top would only cost time).
func extends(full, prefix *otp.Sandbox) (bool, error) {
	n := len(prefix.Chain)
	if len(full.Chain) < n {
		return false, nil
	}
	if same, sure := sameCoin(&full.Coin, &prefix.Coin); sure && !same {
		return false, nil
	} else if sure {
		if same, sure := sameLinks(full.Chain[:n], prefix.Chain); sure {
			return same, nil
		}
	}
	a, err := sandboxJSON(&full.Coin, full.Chain[:n])
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
// this function does not know (coinFieldsKnown).
func sameCoin(a, b *otp.Coin) (same, sure bool) {
	if !coinFieldsKnown {
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
	if !otp.SameTime(da.Expires, db.Expires) {
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
// exchange key cannot be compared cheaply (see otp.SameExchangeKey).
func sameLinks(a, b []otp.Link) (same, sure bool) {
	if len(a) != len(b) || !linkFieldsKnown {
		return false, linkFieldsKnown
	}
	for i := range a {
		if a[i].Sig != b[i].Sig {
			return false, true
		}
		if !otp.SameExchangeKey(&a[i].To, &b[i].To) {
			return false, false
		}
	}
	return true, true
}

// coinFieldsKnown and linkFieldsKnown guard sameCoin and sameLinks against
// a field added to the formats and not compared there: they then fall back
// to JSON.
var (
	coinFieldsKnown = fieldsAre(reflect.TypeFor[otp.Coin](), "SchemaVersion", "Data", "CallMethod", "Checksum", "Signature") &&
		fieldsAre(reflect.TypeFor[otp.Data](), "Token", "Value", "Currency", "Issuer", "KeyID", "Holder", "Expires", "Program", "Conditions") &&
		fieldsAre(reflect.TypeFor[otp.Signature](), "Alg", "Value") &&
		fieldsAre(reflect.TypeFor[otp.Step](), "Method", "Args")
	linkFieldsKnown = fieldsAre(reflect.TypeFor[otp.Link](), "To", "Sig")
)

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

// sandboxJSON encodes a coin and chain, writing no chain and an empty one
// alike.
func sandboxJSON(c *otp.Coin, chain []otp.Link) ([]byte, error) {
	if chain == nil {
		chain = []otp.Link{}
	}
	return json.Marshal(otp.Sandbox{Coin: *c, Chain: chain})
}

// stored loads the holding that sb was taken from, the one that arrived at
// hop, checks that it is in one of states and that sb is the vault's copy.
func (t *tx) stored(sb *otp.Sandbox, hop int, states ...State) ([]byte, holding, State, error) {
	id, h, state, err := t.getHolding(sb.Coin.Data.Token, hop)
	if errors.Is(err, ErrNotFound) {
		return nil, h, "", fmt.Errorf("%w: this vault does not hold the coin", ErrNotFound)
	}
	if err != nil {
		return nil, h, "", err
	}
	if !slices.Contains(states, state) {
		return nil, h, "", fmt.Errorf("%w: the coin is %s, not %s", ErrState, state, states[0])
	}
	same, err := extends(&h.Sandbox, sb)
	if err != nil {
		return nil, h, "", err
	}
	if !same || len(h.Sandbox.Chain) != len(sb.Chain) {
		return nil, h, "", fmt.Errorf("%w: the coin differs from this vault's copy", ErrNotFound)
	}
	return id, h, state, nil
}

// AddWithdrawn stores the coins the bank issued for withdrawal
// withdrawalID as held, in one transaction. Each coin's first holder must
// be one of the withdrawal's keys. Coins already stored are skipped, so a
// withdrawal can be finished twice.
func (v *Vault) AddWithdrawn(ctx context.Context, withdrawalID string, coins []otp.Coin) error {
	if len(coins) == 0 {
		return fmt.Errorf("add withdrawn coins of %q: no coins", withdrawalID)
	}
	err := v.update(ctx, func(t *tx) error {
		wid := t.s.id(kindWithdrawal, []byte(withdrawalID))
		var w withdrawal
		if _, err := t.get(kindWithdrawal, wid, &w); err != nil {
			return err
		}
		for i := range coins {
			if err := t.addWithdrawn(w.Keys, &coins[i]); err != nil {
				return fmt.Errorf("coin %.12s: %w", coins[i].Data.Token, err)
			}
		}
		return t.put(kindWithdrawal, wid, withdrawalDone, nil, w)
	})
	if err != nil {
		return fmt.Errorf("add withdrawn coins of %q: %w", withdrawalID, err)
	}
	return nil
}

func (t *tx) addWithdrawn(keys []string, c *otp.Coin) error {
	if _, err := c.Serial(); err != nil {
		return err
	}
	if !slices.Contains(keys, c.Data.Holder) {
		return fmt.Errorf("%w: holder key %.12s is not one of the withdrawal's keys", ErrNotFound, c.Data.Holder)
	}
	sb := otp.Sandbox{Coin: *c, Chain: []otp.Link{}}
	id, h, _, err := t.getHolding(c.Data.Token, 0)
	switch {
	case err == nil:
		same, err := extends(&h.Sandbox, &sb)
		if err != nil || same {
			return err
		}
		return fmt.Errorf("%w: a different coin with this serial is stored", ErrExists)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	kid, k, state, err := t.key(c.Data.Holder)
	if err != nil {
		return err
	}
	if state != keyWithdrawal {
		return fmt.Errorf("holder key %.12s: %w: it already holds a coin", c.Data.Holder, ErrState)
	}
	if err := t.put(kindKey, kid, keyHolder, nil, k); err != nil {
		return err
	}
	return t.putHolding(id, Held, &holding{Sandbox: sb})
}

// Receive stores coins transferred to this vault's exchange keys as held,
// in one transaction, and returns a receipt for each. The caller has
// verified the coins' signatures. A coin sent again after its receipt was
// lost is answered with the same receipt, even if it has moved on since;
// the same serial with a different chain is refused, and then nothing is
// stored.
//
// When the coins complete a payment this vault promised change for
// (PromiseExchangeKeys), the same transaction seals the change to the
// payer's keys and records it pending-out; Receive returns it, to be sent
// with the receipts.
func (v *Vault) Receive(ctx context.Context, peer string, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	acks := make([]otp.Ack, len(coins))
	var change []otp.Sandbox
	err := v.update(ctx, func(t *tx) error {
		var agreements [][]byte
		for i := range coins {
			var (
				err       error
				agreement []byte
			)
			if acks[i], agreement, err = t.receive(peer, &coins[i]); err != nil {
				return fmt.Errorf("coin %.12s: %w", coins[i].Coin.Data.Token, err)
			}
			if agreement != nil {
				agreements = append(agreements, agreement)
			}
		}
		var err error
		change, err = t.giveChange(agreements)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("receive: %w", err)
	}
	return acks, change, nil
}

func (t *tx) receive(peer string, in *otp.Sandbox) (otp.Ack, []byte, error) {
	hop := len(in.Chain)
	if hop == 0 {
		return otp.Ack{}, nil, fmt.Errorf("%w: the coin was never transferred", otp.ErrChain)
	}
	id, h, _, err := t.getHolding(in.Coin.Data.Token, hop)
	switch {
	case err == nil:
		same, err := extends(&h.Sandbox, in)
		if err != nil {
			return otp.Ack{}, nil, err
		}
		if !same || h.Received == nil {
			return otp.Ack{}, nil, fmt.Errorf("%w: this vault received the coin with a different chain", ErrExists)
		}
		return *h.Received, nil, nil
	case !errors.Is(err, ErrNotFound):
		return otp.Ack{}, nil, err
	}
	if err := t.checkReturn(in); err != nil {
		return otp.Ack{}, nil, err
	}
	kid, k, state, err := t.key(in.Holder())
	if err != nil {
		return otp.Ack{}, nil, fmt.Errorf("transferred to exchange %w", err)
	}
	switch state {
	case keyUncertified, keyCertified, keyPromised:
	case keyHolder:
		return otp.Ack{}, nil, fmt.Errorf("transferred to key %.12s: %w: a coin has already arrived on it", in.Holder(), ErrState)
	default:
		return otp.Ack{}, nil, fmt.Errorf("transferred to key %.12s: %w: a %s key, not an exchange key", in.Holder(), ErrState, state)
	}
	ack, err := in.Acknowledge(privateKey(k.Seed, in.Holder()))
	if err != nil {
		return otp.Ack{}, nil, err
	}
	agreement := k.Agreement
	k.Agreement = nil
	if err := t.put(kindKey, kid, keyHolder, nil, k); err != nil {
		return otp.Ack{}, nil, err
	}
	return ack, agreement, t.putHolding(id, Held, &holding{Sandbox: *in, Hop: hop, Received: &ack, Peer: peer})
}

// checkReturn lets a coin this vault held before come back only along the
// chain it left with.
func (t *tx) checkReturn(in *otp.Sandbox) error {
	last, err := t.latest(in.Coin.Data.Token)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch State(last.state) {
	case PendingOut, Spent:
		ok, err := extends(in, &last.val.Sandbox)
		if err != nil || (ok && len(in.Chain) > len(last.val.Sandbox.Chain)) {
			return err
		}
		return fmt.Errorf("%w: this vault paid the coin away along a different chain", ErrExists)
	case Held:
		return fmt.Errorf("%w: this vault holds the coin with a different chain", ErrExists)
	default:
		return fmt.Errorf("%w: this vault has deposited the coin", ErrExists)
	}
}

// Purse returns the vault as the payer's executor sees it, for a payment to
// peer.
func (v *Vault) Purse(peer string) otp.Purse { return purse{v: v, peer: peer} }

type purse struct {
	v    *Vault
	peer string
}

// Seal transfers each held coin to the matching exchange key and, in one
// transaction, destroys the coins' holder keys and records them as
// pending-out to the purse's peer. The keys are not checked; the executor
// verified them.
func (p purse) Seal(ctx context.Context, coins []otp.Sandbox, to []otp.ExchangeKey) ([]otp.Sandbox, error) {
	if len(coins) != len(to) {
		return nil, fmt.Errorf("seal: %d coins for %d exchange keys", len(coins), len(to))
	}
	sealed := make([]otp.Sandbox, len(coins))
	err := p.v.update(ctx, func(t *tx) error {
		for i := range coins {
			var err error
			if sealed[i], err = t.seal(p.peer, &coins[i], to[i]); err != nil {
				return fmt.Errorf("seal %.12s: %w", coins[i].Coin.Data.Token, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sealed, nil
}

func (t *tx) seal(peer string, sb *otp.Sandbox, to otp.ExchangeKey) (otp.Sandbox, error) {
	id, h, _, err := t.stored(sb, len(sb.Chain), Held)
	if err != nil {
		return otp.Sandbox{}, err
	}
	kid, priv, err := t.holderKey(&h.Sandbox)
	if err != nil {
		return otp.Sandbox{}, err
	}
	if err := h.Sandbox.Transfer(priv, to); err != nil {
		return otp.Sandbox{}, err
	}
	if h.Reclaim, err = newReclaim(&h.Sandbox, priv); err != nil {
		return otp.Sandbox{}, err
	}
	if err := t.delete(kindKey, kid); err != nil {
		return otp.Sandbox{}, err
	}
	h.Peer = peer
	return h.Sandbox, t.putHolding(id, PendingOut, &h)
}

// Destroy records sealed coins as spent, each with the payee's receipt, in
// one transaction. Every receipt is verified first. A coin already spent
// is left as it is, so a payment can be settled twice.
func (p purse) Destroy(ctx context.Context, sealed []otp.Sandbox, acks []otp.Ack) error {
	if len(sealed) != len(acks) {
		return fmt.Errorf("destroy: %d receipts for %d coins", len(acks), len(sealed))
	}
	return p.v.update(ctx, func(t *tx) error {
		// Load every coin first, then verify the receipts of those still
		// pending-out, all of them on all CPUs, against the vault's own
		// copies, and only then record any: a bad receipt changes nothing.
		type pending struct {
			id []byte
			h  holding
			i  int
		}
		todo := make([]pending, 0, len(sealed))
		for i := range sealed {
			id, h, state, err := t.toDestroy(&sealed[i])
			if err != nil {
				return fmt.Errorf("destroy %.12s: %w", sealed[i].Coin.Data.Token, err)
			}
			if state == PendingOut {
				todo = append(todo, pending{id, h, i})
			}
		}
		coins := make([]otp.Sandbox, len(todo))
		their := make([]otp.Ack, len(todo))
		for j := range todo {
			coins[j], their[j] = todo[j].h.Sandbox, acks[todo[j].i]
		}
		if err := otp.VerifyAcks(coins, their); err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
		for j := range todo {
			h := &todo[j].h
			h.Ack, h.Reclaim = &their[j], nil
			if err := t.putHolding(todo[j].id, Spent, h); err != nil {
				return fmt.Errorf("destroy %.12s: %w", sealed[todo[j].i].Coin.Data.Token, err)
			}
		}
		return nil
	})
}

// Authenticated reports that the vault's purse is an
// otp.AuthenticatedPurse: every coin in the vault was verified in full
// before it was stored (AddWithdrawn's and Receive's callers verify, and
// the records are authenticated by the AEAD), Seal signs only the vault's
// own copy and refuses a coin that differs from it (tx.stored), and
// Destroy verifies every receipt before it records any.
func (p purse) Authenticated() bool { return true }

// toDestroy loads the holding that sealed coin sb is the vault's copy of:
// pending-out, or spent when the payment is settled twice.
func (t *tx) toDestroy(sb *otp.Sandbox) ([]byte, holding, State, error) {
	if len(sb.Chain) == 0 {
		return nil, holding{}, "", fmt.Errorf("%w: the coin was never sealed", ErrState)
	}
	return t.stored(sb, len(sb.Chain)-1, PendingOut, Spent)
}

// PendingOut returns the coins sealed to peer ("" for any payee) whose
// receipts have not come back: to be sent again at the next meeting.
func (v *Vault) PendingOut(ctx context.Context, peer string) ([]otp.Sandbox, error) {
	coins, err := v.coins(ctx, PendingOut)
	if err != nil {
		return nil, fmt.Errorf("pending-out coins: %w", err)
	}
	var out []otp.Sandbox
	for _, c := range coins {
		if peer == "" || c.Peer == peer {
			out = append(out, c.Sandbox)
		}
	}
	return out, nil
}

// Coins lists every holding of every coin, oldest change first.
func (v *Vault) Coins(ctx context.Context) ([]Coin, error) {
	coins, err := v.coins(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("coins: %w", err)
	}
	return coins, nil
}

// coins lists the holdings in state, or all of them when state is "".
func (v *Vault) coins(ctx context.Context, state State) ([]Coin, error) {
	var out []Coin
	err := v.update(ctx, func(t *tx) error {
		f := byState
		if state == "" {
			f = allRecords
		}
		rows, err := list[holding](t, kindCoin, f, string(state))
		for _, r := range rows {
			out = append(out, Coin{Sandbox: r.val.Sandbox, State: State(r.state), Peer: r.val.Peer, Ack: r.val.Ack, Updated: r.val.Updated})
		}
		return err
	})
	slices.SortFunc(out, func(a, b Coin) int {
		return cmp.Or(a.Updated.Compare(b.Updated),
			strings.Compare(a.Sandbox.Coin.Data.Token, b.Sandbox.Coin.Data.Token),
			cmp.Compare(len(a.Sandbox.Chain), len(b.Sandbox.Chain)))
	})
	return out, err
}

// Select picks held coins of currency, payable now, whose values add up to
// exactly amount, larger coins first. It reserves nothing: of two payments
// that picked the same coin, only the first to seal it succeeds.
func (v *Vault) Select(ctx context.Context, amt int64, currency string) ([]otp.Sandbox, error) {
	return v.SelectProgram(ctx, amt, currency, "")
}

// SelectProgram is Select among the coins of one coin program (any
// program when program is ""), since coins of different programs do not
// buy the same things.
func (v *Vault) SelectProgram(ctx context.Context, amt int64, currency, program string) ([]otp.Sandbox, error) {
	if amt <= 0 {
		return nil, fmt.Errorf("select: amount %d is not positive", amt)
	}
	held, err := v.Payable(ctx, currency, program)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	values := make([]int64, len(held))
	var have int64
	for i := range held {
		values[i] = held[i].Coin.Data.Value
		have += values[i]
	}
	if have < amt {
		return nil, fmt.Errorf("select: %w: have %s %s, want %s", ErrInsufficient, amount.Format(have), currency, amount.Format(amt))
	}
	pick := choose(values, amt)
	if pick == nil {
		return nil, fmt.Errorf("select: %w: have %s %s, but no set of coins adds up to exactly %s", ErrInsufficient, amount.Format(have), currency, amount.Format(amt))
	}
	out := make([]otp.Sandbox, len(pick))
	for i, j := range pick {
		out[i] = held[j]
	}
	return out, nil
}

// Payable returns the held coins of currency and program (any program
// when program is "") that can be paid now: larger coins first, and among
// equals those expiring first.
func (v *Vault) Payable(ctx context.Context, currency, program string) ([]otp.Sandbox, error) {
	var held []otp.Sandbox
	err := v.update(ctx, func(t *tx) error {
		rows, err := list[holding](t, kindCoin, byState, string(Held))
		for _, r := range rows {
			c := &r.val.Sandbox.Coin
			if c.Data.Currency == currency && (program == "" || c.Data.Program == program) && otp.CheckPayable(c, t.now) == nil {
				held = append(held, r.val.Sandbox)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payable coins: %w", err)
	}
	slices.SortFunc(held, func(a, b otp.Sandbox) int {
		return cmp.Or(cmp.Compare(b.Coin.Data.Value, a.Coin.Data.Value),
			a.Coin.Data.Expires.Compare(b.Coin.Data.Expires),
			strings.Compare(a.Coin.Data.Token, b.Coin.Data.Token))
	})
	return held, nil
}

// DepositItem is a held coin with the holder's signed request to credit it
// to an account.
type DepositItem struct {
	Sandbox otp.Sandbox
	Proof   string
}

// DepositItems returns every held coin with its deposit proof for account.
// The coins stay held until MarkDeposited.
func (v *Vault) DepositItems(ctx context.Context, account string) ([]DepositItem, error) {
	var items []DepositItem
	err := v.update(ctx, func(t *tx) error {
		rows, err := list[holding](t, kindCoin, byState, string(Held))
		if err != nil {
			return err
		}
		for _, r := range rows {
			sb := r.val.Sandbox
			_, priv, err := t.holderKey(&sb)
			if err != nil {
				return fmt.Errorf("coin %.12s: %w", sb.Coin.Data.Token, err)
			}
			proof, err := sb.DepositProof(priv, account)
			if err != nil {
				return err
			}
			items = append(items, DepositItem{Sandbox: sb, Proof: proof})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("deposit items: %w", err)
	}
	return items, nil
}

// MarkDeposited records the coins with the given tokens, credited by the
// bank, as deposited and destroys their holder keys, in one transaction.
// Coins already marked are skipped.
func (v *Vault) MarkDeposited(ctx context.Context, tokens []string) error {
	err := v.update(ctx, func(t *tx) error {
		for _, token := range tokens {
			if err := t.markDeposited(token); err != nil {
				return fmt.Errorf("coin %.12s: %w", token, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark deposited: %w", err)
	}
	return nil
}

func (t *tx) markDeposited(token string) error {
	last, err := t.latest(token)
	if err != nil {
		return err
	}
	switch State(last.state) {
	case Deposited:
		return nil
	case Held:
	default:
		return fmt.Errorf("%w: the coin is %s, not held", ErrState, last.state)
	}
	kid, _, err := t.holderKey(&last.val.Sandbox)
	if err != nil {
		return err
	}
	if err := t.delete(kindKey, kid); err != nil {
		return err
	}
	return t.putHolding(last.id, Deposited, &last.val)
}

// privateKey rebuilds the one-time private key with seed whose public key
// is pub (text form), without ed25519.NewKeyFromSeed's scalar
// multiplication: an Ed25519 private key is the seed followed by the public
// key. The key record is found by a MAC of pub and authenticated by the
// AEAD, so the seed is the one made with pub; were they ever to disagree,
// the signature would simply not verify. A pub that does not decode falls
// back to deriving it.
func privateKey(seed []byte, pub string) ed25519.PrivateKey {
	raw, err := otp.DecodeKey(pub)
	if err != nil || len(seed) != ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed)
	}
	return ed25519.PrivateKey(append(append(make([]byte, 0, ed25519.PrivateKeySize), seed...), raw...))
}
