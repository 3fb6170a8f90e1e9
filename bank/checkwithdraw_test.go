package bank_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// TestCheckWithdraw checks the signing bound's measurement: it signs what
// a withdrawal signs, refuses what a withdrawal refuses, and changes
// nothing.
func TestCheckWithdraw(t *testing.T) {
	ctx := context.Background()
	e := banktest.New(t, bank.Config{})
	before := state(t, e)
	key, coins, _ := e.BlindCoins(t, otp.GeneralProgramName, 3)
	blinded := make([][]byte, len(coins))
	for i, c := range coins {
		blinded[i] = c.Blinded()
	}
	if err := e.Bank.CheckWithdraw(ctx, key.KeyID, blinded); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, keyID string
		blinded     [][]byte
	}{
		{"unknown key", "coin-nope", blinded},
		{"message above the modulus", key.KeyID, [][]byte{blinded[0], bytes.Repeat([]byte{0xff}, otp.BlindMessageSize)}},
		{"message of the wrong size", key.KeyID, [][]byte{blinded[0][1:]}},
	}
	for _, tt := range tests {
		if err := e.Bank.CheckWithdraw(ctx, tt.keyID, tt.blinded); err == nil {
			t.Errorf("%s: signed", tt.name)
		}
	}
	sameState(t, before, state(t, e))
}
