package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/vault"
)

// EventKind names a step reported to Options.OnEvent.
type EventKind string

// The steps OnEvent reports, for a user interface.
const (
	EventSAS           EventKind = "sas"           // the short authentication string to compare (Event.SAS)
	EventOffer         EventKind = "offer"         // a payer's offer, before ConfirmOffer (payee)
	EventResent        EventKind = "resent"        // coins of an earlier broken session delivered again
	EventSealed        EventKind = "sealed"        // coins sealed to the payee (payer)
	EventAcked         EventKind = "acked"         // coins the payee acknowledged: spent (payer)
	EventReceived      EventKind = "received"      // coins checked and stored (payee)
	EventChange        EventKind = "change"        // change given (payee) or received (payer)
	EventSettled       EventKind = "settled"       // in-flight coins delivered to their owner by Settle
	EventWithdrawn     EventKind = "withdrawn"     // coins withdrawn from the bank
	EventDeposited     EventKind = "deposited"     // coins credited by the bank
	EventRedenominated EventKind = "redenominated" // coins re-denominated at the bank
	EventRefilled      EventKind = "refilled"      // exchange keys certified by the bank
)

// Event is a step of a payment or an online operation, for a user
// interface. It is not stored: History is the durable record.
type Event struct {
	Kind   EventKind `json:"kind"`
	Amount int64     `json:"amount,omitempty"` // minor units
	Coins  int       `json:"coins,omitempty"`
	SAS    string    `json:"sas,omitempty"`
	Peer   string    `json:"peer,omitempty"` // the other wallet's identity key
	Detail string    `json:"detail,omitempty"`
}

// HistoryKind names what a HistoryEntry records. The names are stored in
// the vault: they never change meaning. One renamed since is stored under
// its old name (storedKinds).
type HistoryKind string

// The entries of a wallet's history.
const (
	HistoryWithdraw       HistoryKind = "withdraw"        // coins withdrawn from the bank
	HistoryDeposit        HistoryKind = "deposit"         // coins deposited to a bank account
	HistoryRefused        HistoryKind = "refused"         // coins the bank refused for good at deposit (Detail says why)
	HistoryRedenominate   HistoryKind = "redenominate"    // coins re-denominated at the bank (stored as "exchange")
	HistoryReclaim        HistoryKind = "reclaim"         // sealed coins credited back after their deadline
	HistoryPay            HistoryKind = "pay"             // a payment made in a live session
	HistoryReceive        HistoryKind = "receive"         // a payment received in a live session
	HistoryChange         HistoryKind = "change"          // change received as agreed
	HistoryChangeMissing  HistoryKind = "change-missing"  // a payee kept the payment without the agreed change
	HistoryChangeRefused  HistoryKind = "change-refused"  // change that did not verify, refused
	HistoryChangeMismatch HistoryKind = "change-mismatch" // change other than agreed
	HistoryRequest        HistoryKind = "request"         // a payment request made
	HistoryPayToken       HistoryKind = "pay-token"       // a payment request paid with a token
	HistoryReceiveToken   HistoryKind = "receive-token"   // a payment token received
	HistoryRecovered      HistoryKind = "recovered"       // a lost wallet's coins credited by the bank after their deadline
)

// HistoryEntry is one entry of a wallet's history.
type HistoryEntry struct {
	Time     time.Time   `json:"time"`
	Kind     HistoryKind `json:"kind"`
	Amount   int64       `json:"amount"` // minor units of Currency
	Currency string      `json:"currency"`
	Peer     string      `json:"peer,omitempty"` // the other wallet's identity key, or the request
	Detail   string      `json:"detail,omitempty"`
}

// storedKinds are the kinds the vault stores under another name: their
// name before a rename. Vaults hold the old name, so it stays on disk.
var storedKinds = map[HistoryKind]string{
	HistoryRedenominate: "exchange",
}

// historyKind is the kind the vault stores as stored.
func historyKind(stored string) HistoryKind {
	for k, s := range storedKinds {
		if s == stored {
			return k
		}
	}
	return HistoryKind(stored)
}

// vaultEvent is e as the vault stores it.
func (e HistoryEntry) vaultEvent() vault.Event {
	kind, ok := storedKinds[e.Kind]
	if !ok {
		kind = string(e.Kind)
	}
	return vault.Event{Time: e.Time, Kind: kind, Amount: e.Amount, Currency: e.Currency, Peer: e.Peer, Detail: e.Detail}
}

// History returns the wallet's history, oldest first.
func (w *Wallet) History(ctx context.Context) ([]HistoryEntry, error) {
	events, err := w.v.Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	out := make([]HistoryEntry, len(events))
	for i, e := range events {
		out[i] = HistoryEntry{Time: e.Time, Kind: historyKind(e.Kind), Amount: e.Amount, Currency: e.Currency, Peer: e.Peer, Detail: e.Detail}
	}
	return out, nil
}

// record adds e to the history, at the wallet's time; a failure is
// logged, not returned: the step it records is done.
func (w *Wallet) record(ctx context.Context, e HistoryEntry) {
	e.Time = w.now()
	if e.Currency == "" {
		e.Currency = w.Currency()
	}
	if err := w.v.AddEvent(ctx, e.vaultEvent()); err != nil {
		w.log.Warn("history not recorded", "kind", e.Kind, "err", err)
	}
	// Every change of the coins is recorded here, after it is stored.
	w.autoBackup(ctx)
}
