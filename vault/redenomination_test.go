package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// v0Golden is a re-denomination record as the release before versioned
// records wrote it (wallet.Exchange, interrupted before the bank answered).
const v0Golden = "testdata/redenomination-v0.json"

// TestRedenominationGolden: the record the previous release left is read
// and converted; converted, it is stored in version 1, pinned by its own
// golden file, which reads back the same.
func TestRedenominationGolden(t *testing.T) {
	old, err := os.ReadFile(v0Golden)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRedenomination(old)
	if err != nil {
		t.Fatalf("version 0: %v", err)
	}
	if r.ID != "b0-nu5BKh3DtGiPmG2EuWQ" || r.Account != "acct-mRByMezigwU_LPgdPwql5A" || len(r.Coins) != 1 ||
		r.Coins[0].Sandbox.Coin.Data.Token != "E92PlrUzap8QFUdxXXy1PmkB_YxEUys7JNI6lD4c0AM" || r.Coins[0].Proof == "" ||
		!reflect.DeepEqual(r.Parts, []RedenominationPart{{WithdrawalID: "b0-nu5BKh3DtGiPmG2EuWQ/100", KeyID: "coin-PtfgQSvkNwBwwhcC", N: 2}}) {
		t.Fatalf("version 0 read as %+v", r)
	}
	v1, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "redenomination-v1.json")
	if *update {
		if err := os.WriteFile(golden, v1, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v1, want) {
		t.Fatalf("version 1 of the record differs from %s (run with -update if the change is meant):\n%s", golden, v1)
	}
	back, err := decodeRedenomination(want)
	if err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("version 1 read back as %+v, %v; want %+v", back, err, r)
	}
}

// TestRedenominationDecodeRefuses: a record that does not hold together
// is refused, naming what is wrong, rather than asked again of the bank.
func TestRedenominationDecodeRefuses(t *testing.T) {
	old, err := os.ReadFile(v0Golden)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile(filepath.Join("testdata", "redenomination-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(b []byte, from, to string) []byte {
		if !bytes.Contains(b, []byte(from)) {
			t.Fatalf("no %q to edit", from)
		}
		return bytes.Replace(b, []byte(from), []byte(to), 1)
	}
	r, err := decodeRedenomination(v1)
	if err != nil {
		t.Fatal(err)
	}
	r.Coins = nil
	noCoins, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want string
		b          []byte
	}{
		{"v0 request of another id", "the request is of", edit(old, `"id":"b0-nu5BKh3DtGiPmG2EuWQ","account"`, `"id":"other","account"`)},
		{"v0 token not the coin's", "coin 0 is", edit(old, `"tokens":["E92P`, `"tokens":["X92P`)},
		{"v0 part not the batch", "part 0: 3 coins", edit(old, `"n":2`, `"n":3`)},
		{"v0 unknown field", "unknown field", edit(old, `"tokens"`, `"extra":1,"tokens"`)},
		{"v1 unknown field", "unknown field", edit(v1, `"account"`, `"extra":1,"account"`)},
		{"v1 no coins", "no coins given", noCoins},
		{"v1 part without coins", "want a withdrawal, a key and at least one coin", edit(v1, `"n":2`, `"n":0`)},
		{"v1 id with a slash", "without '/'", edit(v1, `"id":"b0-nu5BKh3DtGiPmG2EuWQ"`, `"id":"b0/x"`)},
		{"newer version", "written by a newer release", edit(v1, `"v":1`, `"v":2`)},
		{"data after the record", "after top-level value", append(append([]byte{}, v1...), " {}"...)},
		{"not JSON", "invalid character", []byte("exchange")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeRedenomination(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("decode: %v; want an error mentioning %q", err, c.want)
			}
		})
	}
}

// FuzzDecodeRedenomination: whatever a vault holds, reading it as a record
// does not panic, and a record read is stored and read again unchanged.
func FuzzDecodeRedenomination(f *testing.F) {
	for _, name := range []string{v0Golden, filepath.Join("testdata", "redenomination-v1.json")} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRedenomination(b)
		if err != nil {
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("accepted a record its check refuses: %v", err)
		}
		enc, err := r.encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeRedenomination(enc)
		if err != nil {
			t.Fatalf("version 1 of an accepted record refused: %v", err)
		}
		again, err := back.encode()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("record changed on a round trip: %v\n%s\n%s", err, enc, again)
		}
	})
}

// TestRedenominationRecord: a vault records a re-denomination, hands it
// back, refuses to record it twice or without its withdrawals, opens one
// the previous release stored, and forgets one the bank refused with its
// withdrawals and keys.
func TestRedenominationRecord(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	is.withdraw(t, v, "w1", 200)
	items, err := v.DepositItems(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	r := Redenomination{ID: "r1", Account: "acct-1", Coins: items,
		Parts: []RedenominationPart{{WithdrawalID: "r1/100", KeyID: "coin-100", N: 2}}}
	if err := v.RecordRedenomination(ctx, r); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record before its withdrawals exist: %v; want ErrNotFound", err)
	}
	if _, err := v.HolderKeys(ctx, "r1/100", 2); err != nil {
		t.Fatal(err)
	}
	if err := v.RecordRedenomination(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := v.PendingRedenomination(ctx, "r1"); err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("pending = %+v, %v; want %+v", got, err, r)
	}
	if err := v.RecordRedenomination(ctx, r); !errors.Is(err, ErrExists) {
		t.Fatalf("recorded twice: %v; want ErrExists", err)
	}

	old, err := os.ReadFile(v0Golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetSetting(ctx, "exchange/b0-nu5BKh3DtGiPmG2EuWQ", old); err != nil {
		t.Fatal(err)
	}
	if got, err := v.PendingRedenomination(ctx, "b0-nu5BKh3DtGiPmG2EuWQ"); err != nil || got.Parts[0].WithdrawalID != "b0-nu5BKh3DtGiPmG2EuWQ/100" {
		t.Fatalf("the previous release's record: %+v, %v", got, err)
	}

	if err := v.ForgetRedenomination(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.PendingRedenomination(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("forgotten re-denomination: %v; want ErrNotFound", err)
	}
	if ids, err := v.PendingWithdrawals(ctx); err != nil || len(ids) != 0 {
		t.Errorf("pending withdrawals after forgetting: %v, %v; want none", ids, err)
	}
	if got := held(t, v); len(got) != 1 {
		t.Errorf("held after forgetting: %d coins, want the 1 given, still held", len(got))
	}
}

// TestFinishRedenomination: the bank's answer is stored whole, in one
// transaction: new coins held, given coins deposited with their keys
// destroyed, the history entry, the record gone. A wrong answer stores
// none of it.
func TestFinishRedenomination(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	given := is.withdraw(t, v, "w1", 200)
	items, err := v.DepositItems(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := v.HolderKeys(ctx, "r1/100", 2)
	if err != nil {
		t.Fatal(err)
	}
	r := Redenomination{ID: "r1", Account: "acct-1", Coins: items,
		Parts: []RedenominationPart{{WithdrawalID: "r1/100", KeyID: "coin-100", N: 2}}}
	if err := v.RecordRedenomination(ctx, r); err != nil {
		t.Fatal(err)
	}
	fresh := []otp.Coin{is.issue(t, 100, pubs[0]), is.issue(t, 100, pubs[1])}
	ev := Event{Kind: "exchange", Amount: 200, Currency: "EUR"}

	stranger, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, coins := range map[string][][]otp.Coin{
		"one coin short":        {fresh[:1]},
		"a coin of another key": {{fresh[0], is.issue(t, 100, stranger)}},
		"a part too many":       {fresh, fresh},
	} {
		if err := v.FinishRedenomination(ctx, "r1", coins, ev); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	if got := held(t, v); len(got) != 1 || got[0].Coin.Data.Token != given[0].Data.Token {
		t.Fatalf("after refused answers the vault holds %d coins; want only the one given", len(got))
	}
	if _, err := v.PendingRedenomination(ctx, "r1"); err != nil {
		t.Fatalf("record after refused answers: %v", err)
	}

	if err := v.FinishRedenomination(ctx, "r1", [][]otp.Coin{fresh}, ev); err != nil {
		t.Fatal(err)
	}
	got := held(t, v)
	if len(got) != 2 || got[0].Coin.Data.Value != 100 || got[1].Coin.Data.Value != 100 {
		t.Fatalf("held after the answer: %+v; want the two new coins", got)
	}
	if s := states(t, v)[given[0].Data.Token]; len(s) == 0 || s[len(s)-1] != Deposited {
		t.Errorf("coin given: states %v; want deposited", s)
	}
	assertKeyDestroyed(t, v, given[0].Data.Holder)
	if _, err := v.PendingRedenomination(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("record after the answer: %v; want ErrNotFound", err)
	}
	if evs, err := v.Events(ctx); err != nil || len(evs) != 1 || evs[0].Kind != "exchange" {
		t.Errorf("history: %+v, %v; want the one entry", evs, err)
	}
	if ids, err := v.PendingWithdrawals(ctx); err != nil || len(ids) != 0 {
		t.Errorf("pending withdrawals after the answer: %v, %v", ids, err)
	}
}
