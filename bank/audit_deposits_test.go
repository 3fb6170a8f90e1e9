package bank_test

import (
	"context"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/internal/banktest"
)

// TestAuditDepositCredits tampers with the SQLite ledger so that the
// deposit credits no longer match the deposited coins while every other
// invariant still holds (each account's balance equals its ledger sum,
// issued and withdrawn value agree): only the audit line "deposits
// credited = deposited value" can see it, and it must.
func TestAuditDepositCredits(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string // statements, with ? the payee's account
		want   string
	}{
		{"a deposit credit relabelled an admin credit", []string{
			`UPDATE ledger SET kind = 'credit' WHERE kind = 'deposit' AND account = ?`,
		}, "deposits credited 0.00, but the deposited coins are worth 2.00"},
		{"a deposit credit inflated, and the balance with it", []string{
			`UPDATE ledger SET amount = amount + 500 WHERE id = (SELECT max(id) FROM ledger WHERE kind = 'deposit' AND account = ?)`,
			`UPDATE accounts SET balance = balance + 500 WHERE id = ?`,
		}, "deposits credited 7.00, but the deposited coins are worth 2.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := banktest.New(t, bank.Config{})
			ctx := context.Background()
			payer, payerToken := e.Account(t, 1000)
			payee, payeeToken := e.Account(t, 0)
			coins := e.Withdraw(t, payer, payerToken, 3)
			if _, err := e.Client.Deposit(ctx, payeeToken, banktest.DepositRequest(t, payee, e.Pay(t, coins[:2]))); err != nil {
				t.Fatal(err)
			}
			state(t, e) // in order before the tampering
			db := openRaw(t, e.Path)
			for _, q := range tt.tamper {
				if _, err := db.Exec(q, payee); err != nil {
					t.Fatal(err)
				}
			}
			r, err := e.Bank.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Problems) != 1 || r.Problems[0] != tt.want {
				t.Fatalf("audit problems %q; want exactly %q", r.Problems, tt.want)
			}
			if s := r.String(); !strings.HasSuffix(s, "audit FAILED, problems: 1\n  - "+tt.want) {
				t.Errorf("report text:\n%s", s)
			}
		})
	}
}
