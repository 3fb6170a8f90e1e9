package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// tokenAct is a payment with no live link: Erin's shop shows a request,
// Alice's wallet turns it into a token, Erin's takes the token and gives
// a receipt, Alice's imports the receipt. The wallets never talk; the
// codes could travel as QR codes, files or messages.
func (d *demo) tokenAct(ctx context.Context, alice, erin *person) error {
	const price = 300
	d.say("\n== No live link: Erin's shop shows a payment request, Alice pays with a token")
	if _, err := alice.w.Withdraw(ctx, alice.account, price); err != nil {
		return err
	}
	d.say("Alice withdraws %s (online), then goes shopping", eur(price))
	req, err := erin.w.Request(ctx, price, "bread and cheese", 15*time.Minute, 0)
	if err != nil {
		return err
	}
	if err := d.showCode("Erin's request", "request", req.Text); err != nil {
		return err
	}
	d.say("its %d exchange keys are promised to this request alone in Erin's vault; they carry the bank-certified %v", len(req.Keys), req.Keys[0].Attrs)

	tp, err := alice.w.PayRequest(ctx, req.Text)
	if err != nil {
		return err
	}
	d.say("\nAlice's wallet checks the keys' certificates, seals %d coins to them and records them pending-out before the token exists", tp.Coins)
	if err := d.showCode("Alice's token", "token", tp.Token); err != nil {
		return err
	}
	if b, err := alice.w.Balance(ctx); err != nil {
		return err
	} else if b.PendingOut != price {
		return fmt.Errorf("check failed: Alice has %s pending-out after the token, want %s", eur(b.PendingOut), eur(price))
	}

	got, err := erin.w.ReceiveToken(ctx, tp.Token)
	if err != nil {
		return err
	}
	d.say("\nErin's wallet checks every coin offline, as in a live session, and that they pay this request, on its keys, exactly")
	if err := d.showCode("Erin's receipt", "receipt", got.Receipt); err != nil {
		return err
	}
	again, err := erin.w.ReceiveToken(ctx, tp.Token)
	if err != nil || !again.Again || again.Receipt != got.Receipt {
		return fmt.Errorf("check failed: the token imported twice: %+v, %v; want the same receipt and nothing more", again, err)
	}
	d.say("the same token again gets the same receipt and nothing more")

	imp, err := alice.w.ImportReceipt(ctx, got.Receipt)
	if err != nil {
		return err
	}
	d.say("Alice imports the receipt: %s in %d coins spent, with Erin's signed receipts", eur(imp.Amount), imp.Coins)
	if err := d.expectHeld(ctx, alice, 0); err != nil {
		return err
	}
	r, err := erin.w.Deposit(ctx, erin.account)
	if err != nil {
		return err
	}
	if r.Credited != price || len(r.Refused) > 0 {
		return fmt.Errorf("check failed: Erin's deposit credited %s with %d refused, want %s", eur(r.Credited), len(r.Refused), eur(price))
	}
	d.say("Erin deposits them: %s credited, account balance %s", eur(r.Credited), eur(r.Balance))
	return nil
}

// showCode prints a code and saves it as PNG QR codes in the demo's
// directory.
func (d *demo) showCode(what, name, text string) error {
	files, err := writeQR(io.Discard, text, false, filepath.Join(d.dir, name+".png"))
	if err != nil {
		return err
	}
	d.say("%s, %d characters, %d QR frames (%s):\n%s", what, len(text), len(files), filepath.Base(files[0]), text)
	return nil
}
