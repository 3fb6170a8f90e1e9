package client_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/bank/client"
)

// TestAccountPrintsNoToken: an account printed or logged shows its id,
// never its bearer token.
func TestAccountPrintsNoToken(t *testing.T) {
	a := client.Account{ID: "acct-1", Token: "secret-token"}
	for _, format := range []string{"%v", "%+v", "%s"} {
		got := fmt.Sprintf(format, a)
		if strings.Contains(got, a.Token) || !strings.Contains(got, a.ID) {
			t.Errorf("Sprintf(%q) = %q; want the id without the token", format, got)
		}
	}
}
