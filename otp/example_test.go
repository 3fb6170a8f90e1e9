package otp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// A bank issues a coin, the first holder transfers it to a payee's
// certified exchange key, and anyone holding the bank's catalogue can check
// the result offline.
func Example() {
	now := time.Now()
	coinKey, _, _ := otp.GenerateSigner("demo-bank", otp.IssuerKey{Use: otp.UseCoin, Value: 100, Currency: "EUR",
		NotBefore: now, Expires: now.AddDate(1, 0, 0), DepositUntil: now.AddDate(1, 3, 0)})
	exchKey, _, _ := otp.GenerateSigner("demo-bank", otp.IssuerKey{Use: otp.UseExchange,
		NotBefore: now, Expires: now.AddDate(1, 0, 0), DepositUntil: now.AddDate(1, 3, 0)})
	_, root, _ := ed25519.GenerateKey(rand.Reader)
	cat := &otp.Catalogue{Issuer: "demo-bank", Issued: now, Keys: []otp.IssuerKey{coinKey.Key, exchKey.Key}}
	if err := cat.Sign(root); err != nil {
		panic(err)
	}

	holderPub, holder, _ := ed25519.GenerateKey(rand.Reader)
	coin, err := coinKey.Issue(otp.NewSerial(), holderPub, now.AddDate(1, 0, 0), otp.GeneralProgram())
	if err != nil {
		panic(err)
	}
	payeePub, _, _ := ed25519.GenerateKey(rand.Reader)
	to, _ := exchKey.Certify(payeePub, now.AddDate(0, 3, 0), nil)

	held := otp.Sandbox{Coin: *coin}
	if err := held.Transfer(holder, to); err != nil {
		panic(err)
	}
	v := otp.NewVerifier(cat)
	fmt.Println("verified:", v.VerifySandbox(&held) == nil, "hops:", held.Hops(), "value:", held.Coin.Data.Value, held.Coin.Data.Currency)
	// Output: verified: true hops: 1 value: 100 EUR
}
