package wallet

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/otpcash/otpcash/vault"
)

// walletState is what a refused session must leave as it was: the
// balance, every coin's state (pending-out included), the exchange keys on
// hand, the settings.
type walletState struct {
	Balance Balance
	Coins   map[string]vault.State
	Keys    int
}

func stateOf(t testing.TB, h *holder) walletState {
	t.Helper()
	ctx := context.Background()
	coins, err := h.w.v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := walletState{Balance: h.balance(t), Coins: map[string]vault.State{}}
	for _, c := range coins {
		s.Coins[c.Sandbox.Coin.Data.Token+" "+c.Peer] = c.State
	}
	if s.Keys, err = h.w.v.ExchangeKeyCount(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSASRejected: the user on either side says the short authentication
// string differs from the other screen's (a man in the middle, say). The
// payment stops there: nothing is sealed, sent or stored on either side,
// and no exchange key is used.
func TestSASRejected(t *testing.T) {
	for _, rejecter := range []string{"payer", "payee"} {
		t.Run(rejecter, func(t *testing.T) {
			ctx := context.Background()
			b := newTestBank(t)
			alice, bob := b.newHolder(t, 500), b.newHolder(t, 0)
			if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			shown := map[string]string{}
			confirm := func(who string, yes bool) func(context.Context, string) bool {
				return func(_ context.Context, sas string) bool {
					mu.Lock()
					defer mu.Unlock()
					shown[who] = sas
					return yes
				}
			}
			alice.w.opts.ConfirmSAS = confirm("payer", rejecter != "payer")
			bob.w.opts.ConfirmSAS = confirm("payee", rejecter != "payee")
			aliceBefore, bobBefore := stateOf(t, alice), stateOf(t, bob)

			_, payErr, _, recvErr := pay(t, alice, bob, 300, nil)
			if payErr == nil || recvErr == nil {
				t.Fatalf("a rejected SAS: Pay = %v, Receive = %v; want both to fail", payErr, recvErr)
			}
			refused := payErr
			if rejecter == "payee" {
				refused = recvErr
			}
			if !strings.Contains(refused.Error(), "not confirmed") {
				t.Errorf("the %s's error %q does not say the string was not confirmed", rejecter, refused)
			}
			if shown[rejecter] == "" {
				t.Errorf("the %s was never shown the string: %q", rejecter, shown)
			}
			if got := stateOf(t, alice); !reflect.DeepEqual(got, aliceBefore) {
				t.Errorf("payer changed:\nbefore %+v\nafter  %+v", aliceBefore, got)
			}
			if got := stateOf(t, bob); !reflect.DeepEqual(got, bobBefore) {
				t.Errorf("payee changed:\nbefore %+v\nafter  %+v", bobBefore, got)
			}
		})
	}
}
