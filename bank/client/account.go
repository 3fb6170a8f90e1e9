package client

// Account is the credential of a bank account: its id and the bearer token
// that authenticates it. The two travel as one value, from an app through
// package wallet down to the request, so that they cannot be swapped on
// the way.
type Account struct {
	ID    string
	Token string
}

// String is the account's id alone: an Account printed or logged never
// shows its token.
func (a Account) String() string { return a.ID }
