package bank_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// TestUnlinkability plays the bank as the adversary. Many wallets withdraw
// coins of two coin types, pay them on to payees and the payees deposit
// them in a shuffled order. The bank's whole database and its logs are
// then searched for anything that ties a deposited coin to the withdrawal
// it came from. A linking routine that uses every such trace does no
// better than chance within each coin type; the same routine given what a
// bank signing in the clear stores (the serials it issued) links every
// coin, so the test can fail.
func TestUnlinkability(t *testing.T) {
	const wallets, perWallet = 16, 6
	programs := []string{otp.GeneralProgramName, "max-hops"}
	e := banktest.New(t, bank.Config{})
	rng := rand.New(rand.NewPCG(1, 2))

	truth := map[string]string{} // deposited coin's token -> the account that withdrew it
	var all []banktest.Held
	for w := range wallets {
		acct, token := e.Account(t, perWallet*100)
		for _, h := range e.WithdrawProgram(t, acct, token, perWallet, programs[w%len(programs)]) {
			truth[h.Sandbox.Coin.Data.Token] = acct
			all = append(all, h)
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	payees := make([][2]string, 4)
	for i := range payees {
		payees[i][0], payees[i][1] = e.Account(t, 0)
	}
	for i := 0; i < len(all); i += 8 {
		p := payees[(i/8)%len(payees)]
		batch := e.Pay(t, all[i:min(i+8, len(all))])
		resp, err := e.Client.Deposit(t.Context(), p[1], banktest.DepositRequest(t, p[0], batch))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			if r.Status != "credited" {
				t.Fatalf("deposit: %+v", r)
			}
		}
	}

	view := bankView(t, e)
	if len(view.deposited) != len(truth) {
		t.Fatalf("%d coins in the spent set, want %d", len(view.deposited), len(truth))
	}
	got := linkAll(view, truth, rng)
	// Chance is one withdrawal among those of the coin's type; four
	// standard deviations above it is not chance.
	n := float64(len(truth))
	p := 1 / float64(wallets/len(programs))
	bound := p*n + 4*math.Sqrt(n*p*(1-p))
	t.Logf("linked %d of %d deposited coins to their withdrawal (chance %.1f, bound %.1f); traces found: %d",
		got.correct, len(truth), p*n, bound, got.traces)
	if got.traces != 0 || float64(got.correct) > bound {
		t.Errorf("the bank links deposits to withdrawals: %d traces, %d of %d coins linked", got.traces, got.correct, len(truth))
	}

	// The control: what a bank that saw the serials would have stored.
	for token, acct := range truth {
		view.rows = append(view.rows, "issued "+token+" "+acct)
	}
	if leak := linkAll(view, truth, rng); leak.correct != len(truth) {
		t.Errorf("the linking routine links only %d of %d coins even when the bank stores the serials it issued", leak.correct, len(truth))
	}
}

// adversaryView is everything the bank has: each database row and each
// log line as text, binary columns also in hex and base64url.
type adversaryView struct {
	rows      []string
	deposited []otp.Coin // the coins of the spent set
}

func bankView(t *testing.T, e *banktest.Env) *adversaryView {
	t.Helper()
	db := openRaw(t, e.Path)
	tables, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	tables.Close()
	v := &adversaryView{rows: strings.Split(e.Logs.String(), "\n")}
	for _, table := range names {
		rows, err := db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString(table)
			for _, val := range vals {
				if raw, ok := val.([]byte); ok {
					fmt.Fprintf(&b, " %s %x %s", raw, raw, base64.RawURLEncoding.EncodeToString(raw))
				} else {
					fmt.Fprintf(&b, " %v", val)
				}
			}
			v.rows = append(v.rows, b.String())
		}
		rows.Close()
	}
	spent, err := db.Query(`SELECT sandbox FROM spent`)
	if err != nil {
		t.Fatal(err)
	}
	defer spent.Close()
	for spent.Next() {
		var raw []byte
		if err := spent.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		sb, err := otp.ParseSandbox(raw)
		if err != nil {
			t.Fatal(err)
		}
		v.deposited = append(v.deposited, sb.Coin)
	}
	return v
}

type linkResult struct{ correct, traces int }

// linkAll guesses, for every deposited coin, the account whose withdrawal
// it came from. The candidates are the withdrawals of the coin's type;
// each scores one point per trace of the coin (its token, holder key,
// checksum, signature, and their hashes, as the bank might have stored a
// hash) in a row or log line that names the candidate. The best score
// wins, ties at random.
func linkAll(v *adversaryView, truth map[string]string, rng *rand.Rand) linkResult {
	byKey := map[string]map[string]bool{} // coin key -> accounts that withdrew under it
	coins := map[string]*otp.Coin{}
	for i := range v.deposited {
		coins[v.deposited[i].Data.Token] = &v.deposited[i]
	}
	for token, acct := range truth {
		if c := coins[token]; c != nil {
			if byKey[c.Data.KeyID] == nil {
				byKey[c.Data.KeyID] = map[string]bool{}
			}
			byKey[c.Data.KeyID][acct] = true
		}
	}
	var r linkResult
	for token, acct := range truth {
		c := coins[token]
		if c == nil {
			continue // never found in the spent set: not linked
		}
		traces := coinTraces(c)
		best, bestScore := []string{}, -1
		for cand := range byKey[c.Data.KeyID] {
			score := 0
			for _, row := range v.rows {
				if !strings.Contains(row, cand) || strings.HasPrefix(row, "spent ") {
					continue
				}
				for _, tr := range traces {
					if strings.Contains(row, tr) {
						score++
					}
				}
			}
			switch {
			case score > bestScore:
				best, bestScore = []string{cand}, score
			case score == bestScore:
				best = append(best, cand)
			}
		}
		r.traces += max(bestScore, 0)
		if len(best) > 0 && best[rng.IntN(len(best))] == acct {
			r.correct++
		}
	}
	return r
}

// coinTraces are the forms in which a coin could appear in the bank's
// records of its withdrawal.
func coinTraces(c *otp.Coin) []string {
	var out []string
	for _, s := range []string{c.Data.Token, c.Data.Holder, c.Checksum, c.Signature.Value} {
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		sum := sha256.Sum256(raw)
		out = append(out, s, hex.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:]))
	}
	return out
}

// TestExchangeKeysUnlinkable plays the bank as the adversary against
// payees: several payee wallets each have their anonymous exchange keys
// certified in a request of their own (the bank's logs show each request),
// payers pay coins to those keys, and the payees deposit them into one
// shared account. Searching its whole database and logs for the exchange
// keys of the deposited chains, the bank finds nothing that ties a key to
// the certification request it came in: it does no better than chance.
// Given what a bank certifying in the clear sees (each key in its
// request), the same routine links every key, so the test can fail.
func TestExchangeKeysUnlinkable(t *testing.T) {
	const payees, perPayee = 8, 6
	e := banktest.New(t, bank.Config{})
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := t.Context()
	cat := e.Bank.Catalogue()
	acct, token := e.Account(t, payees*perPayee*100)
	coins := e.Withdraw(t, acct, token, payees*perPayee)
	shop, shopToken := e.Account(t, 0)

	truth := map[string]string{} // exchange key -> the request that had it certified
	var clear []string           // what a bank certifying in the clear would see
	var paid []banktest.Held
	for p := range payees {
		req := fmt.Sprintf("certification request #%d", p)
		pubs := make([]ed25519.PublicKey, perPayee)
		privs := make([]ed25519.PrivateKey, perPayee)
		for i := range pubs {
			pubs[i], privs[i] = banktest.NewKey(t)
		}
		keys, err := e.Client.CertifyExchangeKeys(ctx, cat, pubs)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			truth[k.Pub] = req
			clear = append(clear, req+": "+k.Pub)
			h := coins[p*perPayee+i]
			sb := h.Sandbox
			if err := sb.Transfer(h.Key, k); err != nil {
				t.Fatal(err)
			}
			paid = append(paid, banktest.Held{Sandbox: sb, Key: privs[i]})
		}
	}
	rng.Shuffle(len(paid), func(i, j int) { paid[i], paid[j] = paid[j], paid[i] })
	if _, err := e.Client.Deposit(ctx, shopToken, banktest.DepositRequest(t, shop, paid)); err != nil {
		t.Fatal(err)
	}

	// The adversary numbers the certification requests in its logs, in
	// the order they came: its candidates.
	view := bankView(t, e)
	var rows []string
	n := 0
	for _, row := range view.rows {
		if strings.Contains(row, "path=/v1/exchange-keys") {
			row += fmt.Sprintf(" certification request #%d", n)
			n++
		}
		rows = append(rows, row)
	}
	if n != payees {
		t.Fatalf("%d certification requests in the logs, want %d", n, payees)
	}
	var candidates []string
	for p := range payees {
		candidates = append(candidates, fmt.Sprintf("certification request #%d", p))
	}
	link := func(rows []string) (correct, traces int) {
		for pub, want := range truth {
			raw, _ := base64.RawURLEncoding.DecodeString(pub)
			sum := sha256.Sum256(raw)
			forms := []string{pub, hex.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:])}
			best, bestScore := []string{}, -1
			for _, cand := range candidates {
				score := 0
				for _, row := range rows {
					if !strings.Contains(row, cand) {
						continue
					}
					for _, f := range forms {
						if strings.Contains(row, f) {
							score++
						}
					}
				}
				switch {
				case score > bestScore:
					best, bestScore = []string{cand}, score
				case score == bestScore:
					best = append(best, cand)
				}
			}
			traces += bestScore
			if best[rng.IntN(len(best))] == want {
				correct++
			}
		}
		return correct, traces
	}
	total := float64(len(truth))
	p := 1.0 / payees
	bound := p*total + 4*math.Sqrt(total*p*(1-p))
	correct, traces := link(rows)
	t.Logf("linked %d of %d exchange keys to their certification request (chance %.1f, bound %.1f); traces found: %d",
		correct, len(truth), p*total, bound, traces)
	if traces != 0 || float64(correct) > bound {
		t.Errorf("the bank links exchange keys to their payees: %d traces, %d of %d keys linked", traces, correct, len(truth))
	}
	if leak, _ := link(append(rows, clear...)); leak != len(truth) {
		t.Errorf("the linking routine links only %d of %d keys even when the bank saw them in the clear", leak, len(truth))
	}
}
