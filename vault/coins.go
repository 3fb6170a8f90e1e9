package vault

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/internal/parallel"
	"github.com/otpcash/otpcash/otp"
)

// holding is one stay of a coin in this vault, from the transfer it arrived
// with (hop 0 when withdrawn) until it is deposited or its receipt is back.
// A coin paid away and later paid back starts a second holding, so the
// receipt of the first is kept.
type holding struct {
	Sandbox otp.Sandbox `json:"sandbox" cbor:"1,keyasint"`
	Hop     int         `json:"hop" cbor:"2,keyasint"`
	// Received is the receipt this vault signed; a payer who lost it and
	// sends the coin again gets the same one.
	Received *otp.Ack  `json:"received,omitempty" cbor:"3,keyasint,omitempty"`
	Peer     string    `json:"peer,omitempty" cbor:"4,keyasint,omitempty"`
	Ack      *otp.Ack  `json:"ack,omitempty" cbor:"5,keyasint,omitempty"` // the payee's receipt
	Updated  time.Time `json:"updated" cbor:"6,keyasint"`
	// Reclaim lets the payer reclaim a sealed coin that never reached
	// its payee, after the coin's deposit deadline (otp/reclaim.go).
	Reclaim *reclaimRecord `json:"reclaim,omitempty" cbor:"7,keyasint,omitempty"`
	// Refusal is the bank's evidence against a Refused coin.
	Refusal *Refusal `json:"refusal,omitempty" cbor:"8,keyasint,omitempty"`
}

// Refusal is the bank's answer refusing to credit a coin: its code (like
// "double_deposit"), its message and, for a double deposit, the one-time
// key that signed the coin away twice.
type Refusal struct {
	Token   string `json:"token" cbor:"1,keyasint"`
	Code    string `json:"code" cbor:"2,keyasint"`
	Message string `json:"message" cbor:"3,keyasint"`
	Key     string `json:"key,omitempty" cbor:"4,keyasint,omitempty"`
}

// reclaimRecord is a reclaim key and the authorisation the coin's holder
// key signed for it when it sealed the coin.
type reclaimRecord struct {
	Auth string `json:"auth" cbor:"1,keyasint"`
	Seed []byte `json:"seed" cbor:"2,keyasint"`
}

// Coin is a coin as the vault lists it. Peer is the payer of a received
// coin while it is held, and the payee once it is sealed; Ack is the
// payee's receipt of a spent coin.
type Coin struct {
	Sandbox otp.Sandbox
	State   State
	Peer    string
	Ack     *otp.Ack
	Refusal *Refusal // the bank's reason, for a Refused coin
	Updated time.Time
}

// serialRef indexes every holding of the coin with token.
func (t *tx) serialRef(token string) []byte { return t.s.id(refSerial, []byte(token)) }

// holdingID is the row key of the holding of the coin with token that
// began at hop.
func (t *tx) holdingID(token string, hop int) []byte {
	return t.s.id(kindCoin, []byte(token), binary.BigEndian.AppendUint32(nil, uint32(hop)))
}

func (t *tx) putHolding(id []byte, state State, h *holding) error {
	h.Updated = t.now
	return t.put(kindCoin, id, string(state), t.serialRef(h.Sandbox.Coin.Data.Token), h)
}

// latest returns the most recent holding of the coin with token; ErrNotFound
// if this vault never held it. Earlier holdings all ended in a payment, so
// only the latest can be held.
func (t *tx) latest(token string) (row[holding], error) {
	rows, err := t.latestAll([]string{token})
	if err != nil {
		return row[holding]{}, err
	}
	if rows[0].state == "" {
		return row[holding]{}, ErrNotFound
	}
	return rows[0], nil
}

// latestAll is latest of every coin tokens[i], a zero row (state "") for
// one this vault never held: every holding of them read in a few queries
// and decrypted on all CPUs, where a batch asking coin by coin ran a query
// a coin on the one connection.
func (t *tx) latestAll(tokens []string) ([]row[holding], error) {
	refs := make([][]byte, len(tokens))
	at := make(map[string][]int, len(tokens)) // a batch may name a coin twice
	for i, tok := range tokens {
		refs[i] = t.serialRef(tok)
		at[string(refs[i])] = append(at[string(refs[i])], i)
	}
	var raws []rawRecord
	err := scanIn(t, getRecordsByRef, kindCoin, refs, func(r rawRecord) { raws = append(raws, r) })
	if err != nil {
		return nil, err
	}
	hs, err := openRaws[holding](t, kindCoin, raws, nil)
	if err != nil {
		return nil, err
	}
	out := make([]row[holding], len(tokens))
	for j := range raws {
		for _, i := range at[string(raws[j].ref)] {
			if out[i].state == "" || hs[j].Hop > out[i].val.Hop {
				out[i] = row[holding]{id: raws[j].id, state: raws[j].state, val: hs[j]}
			}
		}
	}
	return out, nil
}

// checkStored checks that h, the vault's holding of sb in state ("" when
// there is none), is in one of states and is sb exactly.
func checkStored(h *holding, state State, sb *otp.Sandbox, states ...State) error {
	if state == "" {
		return fmt.Errorf("%w: this vault does not hold the coin", ErrNotFound)
	}
	if !slices.Contains(states, state) {
		return fmt.Errorf("%w: the coin is %s, not %s", ErrState, state, states[0])
	}
	same, err := h.Sandbox.Extends(sb)
	if err != nil {
		return err
	}
	if !same || len(h.Sandbox.Chain) != len(sb.Chain) {
		return fmt.Errorf("%w: the coin differs from this vault's copy", ErrNotFound)
	}
	return nil
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
		if err := t.addWithdrawn(w.Keys, coins); err != nil {
			return err
		}
		return t.put(kindWithdrawal, wid, withdrawalDone, nil, w)
	})
	if err != nil {
		return fmt.Errorf("add withdrawn coins of %q: %w", withdrawalID, err)
	}
	return nil
}

// addWithdrawn stores coins, each held by one of keys, reading in turn,
// checking and encrypting on all CPUs, writing in turn. Two coins on one
// holder key are refused, as the second of a run of single additions was.
func (t *tx) addWithdrawn(keys []string, coins []otp.Coin) error {
	n := len(coins)
	ids, kids := make([][]byte, n), make([][]byte, n)
	holders := make(map[string]string, n)
	for i := range coins {
		c := &coins[i]
		if _, err := c.Serial(); err != nil {
			return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
		}
		if !slices.Contains(keys, c.Data.Holder) {
			return fmt.Errorf("coin %.12s: %w: holder key %.12s is not one of the withdrawal's keys", c.Data.Token, ErrNotFound, c.Data.Holder)
		}
		if tok, ok := holders[c.Data.Holder]; ok && tok != c.Data.Token {
			return fmt.Errorf("coin %.12s: holder key %.12s: %w: it already holds a coin", c.Data.Token, c.Data.Holder, ErrState)
		}
		holders[c.Data.Holder] = c.Data.Token
		ids[i] = t.holdingID(c.Data.Token, 0)
		var err error
		if kids[i], err = t.keyID(c.Data.Holder); err != nil {
			return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
		}
	}
	states, hs, err := getAll[holding](t, kindCoin, ids)
	if err != nil {
		return err
	}
	kstates, ks, err := getAll[keyRecord](t, kindKey, kids)
	if err != nil {
		return err
	}
	recs := make([][2]sealedRecord, n)
	err = parallel.ForEach(n, func(i int) error {
		c := &coins[i]
		sb := otp.Sandbox{Coin: *c, Chain: []otp.Link{}}
		if states[i] != "" {
			same, err := hs[i].Sandbox.Extends(&sb)
			if err != nil || same {
				return err // stored by an earlier call
			}
			return fmt.Errorf("coin %.12s: %w: a different coin with this serial is stored", c.Data.Token, ErrExists)
		}
		switch kstates[i] {
		case keyWithdrawal:
		case "":
			return fmt.Errorf("coin %.12s: %w", c.Data.Token, errNoKey(c.Data.Holder))
		default:
			return fmt.Errorf("coin %.12s: holder key %.12s: %w: it already holds a coin", c.Data.Token, c.Data.Holder, ErrState)
		}
		var err error
		if recs[i][0], err = t.sealRecord(kindKey, kids[i], keyHolder, nil, ks[i]); err != nil {
			return err
		}
		recs[i][1], err = t.sealRecord(kindCoin, ids[i], string(Held), t.serialRef(c.Data.Token), &holding{Sandbox: sb, Updated: t.now})
		return err
	})
	if err != nil {
		return err
	}
	for i := range recs {
		if err := t.putAll(recs[i][:]...); err != nil {
			return err
		}
	}
	return nil
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
	var acks []otp.Ack
	var change []otp.Sandbox
	err := v.update(ctx, func(t *tx) error {
		var agreements [][]byte
		var err error
		if acks, agreements, err = t.receiveAll(peer, "", coins); err != nil {
			return err
		}
		change, err = t.giveChange(agreements)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("receive: %w", err)
	}
	return acks, change, nil
}

// receiveAll stores coins as held and acknowledges them, and returns the
// change agreements of the exchange keys they arrived on. Like sealAll it
// reads in turn, checks, signs and encrypts on all CPUs, then writes in
// turn. Two coins on one exchange key are refused, as the second of a
// sequence of single receipts would be; so is a coin named twice.
//
// request is the payment request the coins pay ("" in a live session):
// every coin must arrive on a key promised to it, and no coin of a live
// session on a key promised to a request.
func (t *tx) receiveAll(peer, request string, coins []otp.Sandbox) ([]otp.Ack, [][]byte, error) {
	n := len(coins)
	ids, kids := make([][]byte, n), make([][]byte, n)
	seen := make(map[string]bool, 2*n)
	for i := range coins {
		in := &coins[i]
		if len(in.Chain) == 0 {
			return nil, nil, fmt.Errorf("coin %.12s: %w: the coin was never transferred", in.Coin.Data.Token, otp.ErrChain)
		}
		ids[i] = t.holdingID(in.Coin.Data.Token, len(in.Chain))
		kid, err := t.keyID(in.Holder())
		if err != nil {
			return nil, nil, fmt.Errorf("coin %.12s: transferred to exchange key: %w", in.Coin.Data.Token, err)
		}
		kids[i] = kid
		// A serial twice, at any hops, would have each copy checked as if
		// the other were not there.
		if seen["coin "+in.Coin.Data.Token] {
			return nil, nil, fmt.Errorf("coin %.12s: %w: the coin is in the batch twice", in.Coin.Data.Token, ErrExists)
		}
		if seen[string(kid)] {
			return nil, nil, fmt.Errorf("coin %.12s: transferred to key %.12s: %w: a coin has already arrived on it", in.Coin.Data.Token, in.Holder(), ErrState)
		}
		seen["coin "+in.Coin.Data.Token], seen[string(kid)] = true, true
	}
	states, hs, err := getAll[holding](t, kindCoin, ids)
	if err != nil {
		return nil, nil, err
	}
	var fresh []int // not sent again (those are checked below)
	var tokens []string
	for i := range coins {
		if states[i] == "" {
			fresh, tokens = append(fresh, i), append(tokens, coins[i].Coin.Data.Token)
		}
	}
	lasts, err := t.latestAll(tokens)
	if err != nil {
		return nil, nil, err
	}
	for j, i := range fresh {
		if err := checkReturn(&coins[i], &lasts[j]); err != nil {
			return nil, nil, fmt.Errorf("coin %.12s: %w", coins[i].Coin.Data.Token, err)
		}
	}
	kstates, ks, err := getAll[keyRecord](t, kindKey, kids)
	if err != nil {
		return nil, nil, err
	}
	acks := make([]otp.Ack, n)
	recs := make([][2]sealedRecord, n)
	err = parallel.ForEach(n, func(i int) (err error) {
		if recs[i], acks[i], err = t.receive(peer, request, &coins[i], ids[i], states[i], &hs[i], kids[i], kstates[i], &ks[i]); err != nil {
			return fmt.Errorf("coin %.12s: %w", coins[i].Coin.Data.Token, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var agreements [][]byte
	for i := range recs {
		if err := t.putAll(recs[i][:]...); err != nil {
			return nil, nil, err
		}
		if states[i] == "" && ks[i].Agreement != nil {
			agreements = append(agreements, ks[i].Agreement)
		}
	}
	return acks, agreements, nil
}

// receive checks the coin in against what the vault has: h, its holding
// in state ("" if none), and k, the record of the exchange key it arrived
// on in kstate. A coin already held with the same chain gets its receipt
// again and no records; a new one gets a receipt and the records of the
// key, now its holder key, and of its holding.
func (t *tx) receive(peer, request string, in *otp.Sandbox, id []byte, state string, h *holding, kid []byte, kstate string, k *keyRecord) ([2]sealedRecord, otp.Ack, error) {
	var recs [2]sealedRecord
	if state != "" {
		same, err := h.Sandbox.Extends(in)
		if err != nil {
			return recs, otp.Ack{}, err
		}
		if !same || h.Received == nil {
			return recs, otp.Ack{}, fmt.Errorf("%w: this vault received the coin with a different chain", ErrExists)
		}
		return recs, *h.Received, nil
	}
	switch kstate {
	case keyUncertified, keyCertified, keyPromised:
	case "":
		return recs, otp.Ack{}, fmt.Errorf("transferred to exchange %w", errNoKey(in.Holder()))
	case keyHolder:
		return recs, otp.Ack{}, fmt.Errorf("transferred to key %.12s: %w: a coin has already arrived on it", in.Holder(), ErrState)
	default:
		return recs, otp.Ack{}, fmt.Errorf("transferred to key %.12s: %w: a %s key, not an exchange key", in.Holder(), ErrState, kstate)
	}
	if k.Agreement != nil {
		if err := k.Due.admits(&in.Coin); err != nil {
			return recs, otp.Ack{}, err
		}
	}
	if err := admitsRequest(k.Request, request, in.Holder()); err != nil {
		return recs, otp.Ack{}, err
	}
	priv, err := privateKey(k.Seed, in.Holder())
	if err != nil {
		return recs, otp.Ack{}, err
	}
	ack, err := in.Acknowledge(priv)
	if err != nil {
		return recs, otp.Ack{}, err
	}
	held := *k
	held.Agreement, held.Due, held.Request = nil, nil, ""
	if recs[0], err = t.sealRecord(kindKey, kid, keyHolder, nil, held); err != nil {
		return recs, otp.Ack{}, err
	}
	recs[1], err = t.sealRecord(kindCoin, id, string(Held), t.serialRef(in.Coin.Data.Token),
		&holding{Sandbox: *in, Hop: len(in.Chain), Received: &ack, Peer: peer, Updated: t.now})
	return recs, ack, err
}

// checkReturn lets a coin come in only if this vault never held it, or
// held it before (last, its latest holding) and it comes back along the
// chain it left with.
func checkReturn(in *otp.Sandbox, last *row[holding]) error {
	switch State(last.state) {
	case "":
		return nil
	case PendingOut, Spent:
		ok, err := in.Extends(&last.val.Sandbox)
		if err != nil || (ok && len(in.Chain) > len(last.val.Sandbox.Chain)) {
			return err
		}
		return fmt.Errorf("%w: this vault paid the coin away along a different chain", ErrExists)
	case Held:
		return fmt.Errorf("%w: this vault holds the coin with a different chain", ErrExists)
	case Refused:
		return fmt.Errorf("%w: the bank refused this coin's deposit", ErrExists)
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
	var sealed []otp.Sandbox
	err := p.v.update(ctx, func(t *tx) error {
		var err error
		sealed, err = t.sealAll(p.peer, coins, to)
		return err
	})
	if err != nil {
		return nil, err
	}
	return sealed, nil
}

// sealAll transfers each held coin to the matching exchange key, destroys
// its holder key and records it as pending-out to peer. It reads the
// coins and keys in turn, checks, signs and encrypts them on all CPUs, then
// writes in turn; a coin or holder key named twice is refused, as the
// second of a sequence of single seals would be.
func (t *tx) sealAll(peer string, coins []otp.Sandbox, to []otp.ExchangeKey) ([]otp.Sandbox, error) {
	n := len(coins)
	if n != len(to) {
		return nil, fmt.Errorf("seal: %d coins for %d exchange keys", n, len(to))
	}
	ids, kids := make([][]byte, n), make([][]byte, n)
	seen := make(map[string]bool, 2*n)
	for i := range coins {
		sb := &coins[i]
		ids[i] = t.holdingID(sb.Coin.Data.Token, len(sb.Chain))
		kid, err := t.keyID(sb.Holder())
		if err != nil {
			return nil, fmt.Errorf("seal %.12s: %w", sb.Coin.Data.Token, err)
		}
		kids[i] = kid
		if seen["coin "+sb.Coin.Data.Token] || seen[string(kid)] {
			return nil, fmt.Errorf("seal %.12s: %w: the coin or its holder key is in the batch twice", sb.Coin.Data.Token, ErrState)
		}
		seen["coin "+sb.Coin.Data.Token], seen[string(kid)] = true, true
	}
	states, hs, err := getAll[holding](t, kindCoin, ids)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	kstates, ks, err := getAll[keyRecord](t, kindKey, kids)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	rk, err := newReclaimKey()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sealed := make([]otp.Sandbox, n)
	recs := make([]sealedRecord, n)
	err = parallel.ForEach(n, func(i int) error {
		h := &hs[i]
		if err := checkStored(h, State(states[i]), &coins[i], Held); err != nil {
			return fmt.Errorf("seal %.12s: %w", coins[i].Coin.Data.Token, err)
		}
		// The key the record was looked up by; checkStored made it h's.
		priv, err := holderPrivate(&ks[i], kstates[i], coins[i].Holder())
		if err != nil {
			return fmt.Errorf("seal %.12s: %w", coins[i].Coin.Data.Token, err)
		}
		if err := h.Sandbox.Transfer(priv, to[i]); err != nil {
			return fmt.Errorf("seal %.12s: %w", coins[i].Coin.Data.Token, err)
		}
		if h.Reclaim, err = rk.authorize(&h.Sandbox, priv); err != nil {
			return fmt.Errorf("seal %.12s: %w", coins[i].Coin.Data.Token, err)
		}
		h.Peer, h.Updated = peer, t.now
		sealed[i] = h.Sandbox
		recs[i], err = t.sealRecord(kindCoin, ids[i], string(PendingOut), t.serialRef(h.Sandbox.Coin.Data.Token), h)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, kid := range kids {
		if err := t.delete(kindKey, kid); err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
	}
	if err := t.putAll(recs...); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return sealed, nil
}

// Destroy records sealed coins as spent, each with the payee's receipt, in
// one transaction. Every receipt is verified first. A coin already spent
// is left as it is, so a payment can be settled twice.
func (p purse) Destroy(ctx context.Context, sealed []otp.Sandbox, acks []otp.Ack) error {
	if len(sealed) != len(acks) {
		return fmt.Errorf("destroy: %d receipts for %d coins", len(acks), len(sealed))
	}
	return p.v.update(ctx, func(t *tx) error {
		ids := make([][]byte, len(sealed))
		for i := range sealed {
			if len(sealed[i].Chain) == 0 {
				return fmt.Errorf("destroy %.12s: %w: the coin was never sealed", sealed[i].Coin.Data.Token, ErrState)
			}
			ids[i] = t.holdingID(sealed[i].Coin.Data.Token, len(sealed[i].Chain)-1)
		}
		// Load every coin first, then verify the receipts of those still
		// pending-out, all of them on all CPUs, against the vault's own
		// copies, and only then record any: a bad receipt changes nothing.
		states, hs, err := getAll[holding](t, kindCoin, ids)
		if err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
		err = parallel.ForEach(len(sealed), func(i int) error {
			if err := checkStored(&hs[i], State(states[i]), &sealed[i], PendingOut, Spent); err != nil {
				return fmt.Errorf("destroy %.12s: %w", sealed[i].Coin.Data.Token, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// The receipts' signatures, against the vault's own copies, as
		// one batch.
		var own []*otp.Sandbox
		var owed []otp.Ack
		for i := range hs {
			if State(states[i]) == PendingOut {
				own, owed = append(own, &hs[i].Sandbox), append(owed, acks[i])
			}
		}
		if err := otp.VerifyAcks(own, owed); err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
		recs := make([]sealedRecord, len(sealed))
		err = parallel.ForEach(len(sealed), func(i int) error {
			h, tok := &hs[i], sealed[i].Coin.Data.Token
			if State(states[i]) != PendingOut {
				return nil
			}
			ack := acks[i]
			h.Ack, h.Reclaim, h.Updated = &ack, nil, t.now
			var err error
			recs[i], err = t.sealRecord(kindCoin, ids[i], string(Spent), t.serialRef(tok), h)
			return err
		})
		if err != nil {
			return err
		}
		return t.putAll(recs...)
	})
}

// Authenticated reports that the vault's purse is an
// otp.AuthenticatedPurse: every coin in the vault was verified in full
// before it was stored (AddWithdrawn's and Receive's callers verify, and
// the records are authenticated by the AEAD), Seal signs only the vault's
// own copy and refuses a coin that differs from it (checkStored), and
// Destroy verifies every receipt before it records any.
func (p purse) Authenticated() bool { return true }

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

// Coins lists every holding of every coin, oldest change first; given
// states, only the holdings in those. A vault keeps every coin it ever
// held (spent, deposited), so a caller that needs only some states, as a
// balance does, lists those. The coins' chains and programs may be shared
// with the vault's memory of its held coins: read them, append to a chain
// (Transfer), never change an element.
func (v *Vault) Coins(ctx context.Context, states ...State) ([]Coin, error) {
	coins, err := v.coins(ctx, states...)
	if err != nil {
		return nil, fmt.Errorf("coins: %w", err)
	}
	return coins, nil
}

// coins lists the holdings in states, or all of them when there is none;
// the held ones from the memo (tx.held).
func (v *Vault) coins(ctx context.Context, states ...State) ([]Coin, error) {
	var out []Coin
	err := v.view(ctx, func(t *tx) error {
		if len(states) == 0 {
			rows, err := list[holding](t, kindCoin, allRecords, nil)
			for _, r := range rows {
				out = append(out, r.val.coin(State(r.state)))
			}
			return err
		}
		for _, state := range slices.Compact(slices.Sorted(slices.Values(states))) {
			if state == Held {
				held, err := t.held()
				if err != nil {
					return err
				}
				for _, c := range held {
					out = append(out, *c)
				}
				continue
			}
			rows, err := list[holding](t, kindCoin, byState, string(state))
			for _, r := range rows {
				out = append(out, r.val.coin(state))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Coin) int {
		return cmp.Or(a.Updated.Compare(b.Updated),
			strings.Compare(a.Sandbox.Coin.Data.Token, b.Sandbox.Coin.Data.Token),
			cmp.Compare(len(a.Sandbox.Chain), len(b.Sandbox.Chain)))
	})
	return out, err
}

// coin is h as Coins lists it, in state.
func (h *holding) coin(state State) Coin {
	return Coin{Sandbox: h.Sandbox, State: state, Peer: h.Peer, Ack: h.Ack, Refusal: h.Refusal, Updated: h.Updated}
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
// equals those expiring first. Their chains and programs are shared with
// the vault's memory of its held coins, as in Coins.
func (v *Vault) Payable(ctx context.Context, currency, program string) ([]otp.Sandbox, error) {
	var out []otp.Sandbox
	err := v.view(ctx, func(t *tx) error {
		held, err := t.held()
		out = payable(held, currency, program, v.now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payable coins: %w", err)
	}
	return out, nil
}

// held returns the coins held, in Payable's order. Every payment lists
// them to choose from, on both sides when there is change, and a wallet
// may hold thousands: each is decrypted once and remembered (t.mem), as
// offerable remembers keys. Until another process commits, the memo reads
// again only the coin records this vault has written since (memo.wroteCoins);
// after, it reads every held coin's version and decrypts those that
// changed. It is sorted again only after the latter. held is for a read
// transaction (Vault.view): the memo is what was committed. The slice and
// its coins are the memo's, to be read only.
func (t *tx) held() ([]*Coin, error) {
	at, sameConn, err := t.dataVersion()
	if err != nil {
		return nil, err
	}
	m := t.mem
	changed := false
	switch {
	case !m.heldWhole || at != m.heldAt || !sameConn:
		m.heldWhole = false
		coins, ch, err := remembered(t, kindCoin, string(Held), m.held, heldCoin)
		if err != nil {
			return nil, err
		}
		m.held, m.heldWhole, m.heldAt, m.heldStale, changed = coins, true, at, nil, ch
	case len(m.heldStale) > 0:
		// A few records changed: their coins leave the order and come
		// back where they now sort, without sorting every coin again.
		gone := make(map[*Coin]bool, len(m.heldStale))
		for _, id := range m.heldStale {
			if c, ok := m.held[string(id)]; ok {
				gone[c.val] = true
			}
		}
		if err := reread(t, kindCoin, string(Held), m.held, m.heldStale, heldCoin); err != nil {
			return nil, err
		}
		var added []*Coin
		seen := make(map[*Coin]bool, len(m.heldStale)) // a record written twice
		for _, id := range m.heldStale {
			if c, ok := m.held[string(id)]; ok && !seen[c.val] {
				seen[c.val] = true
				added = append(added, c.val)
			}
		}
		m.heldStale = nil
		if m.heldOrder != nil {
			m.heldOrder = mergeOrder(m.heldOrder, gone, added)
		}
	}
	if changed || m.heldOrder == nil {
		order := make([]*Coin, 0, len(m.held))
		for _, c := range m.held {
			order = append(order, c.val)
		}
		slices.SortFunc(order, payableOrder)
		m.heldOrder = order
	}
	return m.heldOrder, nil
}

// mergeOrder returns order, which is in Payable's order, without the
// coins gone and with the coins added, in that order.
func mergeOrder(order []*Coin, gone map[*Coin]bool, added []*Coin) []*Coin {
	slices.SortFunc(added, payableOrder)
	out := make([]*Coin, 0, len(order)+len(added))
	for _, c := range order {
		if gone[c] {
			continue
		}
		for len(added) > 0 && payableOrder(added[0], c) < 0 {
			out, added = append(out, added[0]), added[1:]
		}
		out = append(out, c)
	}
	return append(out, added...)
}

// heldCoin is what the memo keeps of a held coin.
func heldCoin(h *holding) *Coin {
	c := h.coin(Held)
	return &c
}

// PayableOf is Payable of coins, as Coins lists them, at now: for a caller
// that needs the vault's other holdings too, from the same read.
func PayableOf(coins []Coin, currency, program string, now time.Time) []otp.Sandbox {
	var held []*Coin
	for i := range coins {
		if coins[i].State == Held {
			held = append(held, &coins[i])
		}
	}
	slices.SortFunc(held, payableOrder)
	return payable(held, currency, program, now)
}

// payable returns, in their order, the sandboxes of the coins of held of
// currency and program that can be paid at now.
func payable(held []*Coin, currency, program string, now time.Time) []otp.Sandbox {
	out := make([]otp.Sandbox, 0, len(held))
	for _, h := range held {
		c := &h.Sandbox.Coin
		if c.Data.Currency == currency && (program == "" || c.Data.Program == program) && otp.CheckPayable(c, now) == nil {
			out = append(out, h.Sandbox)
		}
	}
	return out
}

// payableOrder is Payable's order: larger coins first, and among equals
// those expiring first.
func payableOrder(a, b *Coin) int {
	x, y := &a.Sandbox.Coin.Data, &b.Sandbox.Coin.Data
	return cmp.Or(cmp.Compare(y.Value, x.Value), x.Expires.Compare(y.Expires), strings.Compare(x.Token, y.Token))
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
	items, err := v.signHeld(ctx, func(sb *otp.Sandbox, holder ed25519.PrivateKey) (string, error) {
		return sb.DepositProof(holder, account)
	})
	if err != nil {
		return nil, fmt.Errorf("deposit items: %w", err)
	}
	return items, nil
}

// RecoveryItems returns every held coin with its holder key's
// authorisation for the recovery key r to claim it, as held now, at the
// bank after its deposit deadline (otp.Sandbox.RecoveryAuthorization).
// Nothing changes: the coins stay held and payable.
func (v *Vault) RecoveryItems(ctx context.Context, r ed25519.PublicKey) ([]DepositItem, error) {
	items, err := v.signHeld(ctx, func(sb *otp.Sandbox, holder ed25519.PrivateKey) (string, error) {
		return sb.RecoveryAuthorization(holder, r)
	})
	if err != nil {
		return nil, fmt.Errorf("recovery items: %w", err)
	}
	return items, nil
}

// signHeld returns every held coin with what sign makes of it with its
// holder key.
func (v *Vault) signHeld(ctx context.Context, sign func(*otp.Sandbox, ed25519.PrivateKey) (string, error)) ([]DepositItem, error) {
	var items []DepositItem
	err := v.update(ctx, func(t *tx) error {
		rows, err := list[holding](t, kindCoin, byState, string(Held))
		if err != nil {
			return err
		}
		kids := make([][]byte, len(rows))
		for i := range rows {
			if kids[i], err = t.keyID(rows[i].val.Sandbox.Holder()); err != nil {
				return fmt.Errorf("coin %.12s: %w", rows[i].val.Sandbox.Coin.Data.Token, err)
			}
		}
		kstates, ks, err := getAll[keyRecord](t, kindKey, kids)
		if err != nil {
			return err
		}
		items = make([]DepositItem, len(rows))
		return parallel.ForEach(len(rows), func(i int) error {
			sb := rows[i].val.Sandbox
			priv, err := holderPrivate(&ks[i], kstates[i], sb.Holder())
			if err != nil {
				return fmt.Errorf("coin %.12s: %w", sb.Coin.Data.Token, err)
			}
			sig, err := sign(&sb, priv)
			if err != nil {
				return err
			}
			items[i] = DepositItem{Sandbox: sb, Proof: sig}
			return nil
		})
	})
	return items, err
}

// MarkDeposited records the coins with the given tokens, credited by the
// bank, as deposited and destroys their holder keys, in one transaction.
// Coins already marked are skipped.
func (v *Vault) MarkDeposited(ctx context.Context, tokens []string) error {
	if err := v.update(ctx, func(t *tx) error { return t.markDeposited(tokens) }); err != nil {
		return fmt.Errorf("mark deposited: %w", err)
	}
	return nil
}

// SettleDeposit records the bank's answer to a deposit in one
// transaction: the coins credited as deposited (as MarkDeposited), the
// coins refused as Refused, each with the bank's refusal, and ev, if its
// Kind is set, in the history. A refused coin leaves the held coins, so
// it is never paid or offered again, but keeps its holder key: a refusal
// the owner disputes needs a deposit proof signed with it. A crash leaves
// all of it or none, and the next deposit sends what is still held again.
// Coins already in the state they are moved to are skipped.
func (v *Vault) SettleDeposit(ctx context.Context, credited []string, refused []Refusal, ev Event) error {
	err := v.update(ctx, func(t *tx) error {
		if err := t.markDeposited(credited); err != nil {
			return err
		}
		if err := t.markRefused(refused); err != nil {
			return err
		}
		if ev.Kind == "" {
			return nil
		}
		return t.addEvent(ev)
	})
	if err != nil {
		return fmt.Errorf("settle deposit: %w", err)
	}
	return nil
}

// heldLatest returns the latest holding of each coin, checking that it is
// held or already in state done; skip[i] says it is in done.
func (t *tx) heldLatest(tokens []string, done State) ([]row[holding], []bool, error) {
	lasts, err := t.latestAll(tokens)
	if err != nil {
		return nil, nil, err
	}
	skip := make([]bool, len(tokens))
	for i, tok := range tokens {
		switch State(lasts[i].state) {
		case "":
			return nil, nil, fmt.Errorf("coin %.12s: %w", tok, ErrNotFound)
		case done:
			skip[i] = true
		case Held:
		default:
			return nil, nil, fmt.Errorf("coin %.12s: %w: the coin is %s, not held", tok, ErrState, lasts[i].state)
		}
	}
	return lasts, skip, nil
}

// markDeposited records the held coins with the given tokens as deposited
// and destroys their holder keys.
func (t *tx) markDeposited(tokens []string) error {
	lasts, skip, err := t.heldLatest(tokens, Deposited)
	if err != nil {
		return err
	}
	kids := make([][]byte, len(tokens))
	for i := range lasts {
		if kids[i], err = t.keyID(lasts[i].val.Sandbox.Holder()); err != nil {
			return fmt.Errorf("coin %.12s: %w", tokens[i], err)
		}
	}
	kstates, err := getStates(t, kindKey, kids)
	if err != nil {
		return err
	}
	recs := make([]sealedRecord, len(tokens))
	err = parallel.ForEach(len(tokens), func(i int) error {
		if skip[i] {
			return nil
		}
		last := &lasts[i]
		if err := checkHolderKey(kstates[i], last.val.Sandbox.Holder()); err != nil {
			return fmt.Errorf("coin %.12s: %w", tokens[i], err)
		}
		last.val.Updated = t.now
		var err error
		recs[i], err = t.sealRecord(kindCoin, last.id, string(Deposited), t.serialRef(tokens[i]), &last.val)
		return err
	})
	if err != nil {
		return err
	}
	for i := range recs {
		if !skip[i] {
			if err := t.delete(kindKey, kids[i]); err != nil {
				return err
			}
		}
	}
	return t.putAll(recs...)
}

// markRefused records the held coins the bank refused as Refused, each
// with its refusal.
func (t *tx) markRefused(refused []Refusal) error {
	tokens := make([]string, len(refused))
	for i := range refused {
		tokens[i] = refused[i].Token
	}
	lasts, skip, err := t.heldLatest(tokens, Refused)
	if err != nil {
		return err
	}
	for i := range lasts {
		if skip[i] {
			continue
		}
		h := &lasts[i].val
		r := refused[i]
		h.Refusal, h.Updated = &r, t.now
		if err := t.putHolding(lasts[i].id, Refused, h); err != nil {
			return fmt.Errorf("coin %.12s: %w", tokens[i], err)
		}
	}
	return nil
}
