package bank

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

// TestBlindSignError checks who is blamed for a failed blind signature: a
// bad blinded message is the client's (400, with the reason), a signature
// that failed its check before release is the bank's (not an *api.Error:
// logged and answered 500, never shown as the client's fault).
func TestBlindSignError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int // 0: not an *api.Error
	}{
		{"bad request", fmt.Errorf("blind sign: %w: blinded message not less than the modulus", otp.ErrBlind), http.StatusBadRequest},
		{"fault", fmt.Errorf("blind sign: key %q: %w", "coin-1", otp.ErrBlindFault), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := blindSignError("blinded[3]", tt.err)
			var e *api.Error
			switch {
			case tt.status == 0 && errors.As(err, &e):
				t.Fatalf("got client error %d %v; want the bank's own failure", e.Status, e)
			case tt.status == 0 && !errors.Is(err, otp.ErrBlindFault):
				t.Fatalf("got %v; want it to wrap ErrBlindFault", err)
			case tt.status != 0 && (!errors.As(err, &e) || e.Status != tt.status):
				t.Fatalf("got %v; want status %d", err, tt.status)
			}
		})
	}
}
