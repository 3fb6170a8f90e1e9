package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrWeakPIN reports a PIN or passphrase that Create refuses: see CheckPIN.
var ErrWeakPIN = errors.New("PIN or passphrase too weak")

// ErrLocked reports a vault that refuses to try a PIN for now: the
// software vault after too many wrong PINs (until the time the error
// names), the TPM vault while the TPM's dictionary-attack lockout lasts.
var ErrLocked = errors.New("too many wrong PINs")

// The PIN policy: a PIN of at least minPINDigits digits, or a passphrase
// of at least minPassphrase characters. A 6-digit PIN is a million
// guesses: with the TPM's lockout (tpm.go) that is decades of guessing,
// and with the software vault's delays (below) more than a century of
// online guessing through the app.
const (
	minPINDigits  = 6
	minPassphrase = 8
)

// CheckPIN reports whether pin meets the policy: at least 6 digits, or a
// passphrase of at least 8 characters (valid UTF-8) that is not all
// digits.
func CheckPIN(pin []byte) error {
	if !utf8.Valid(pin) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPIN)
	}
	digits := true
	for _, c := range string(pin) {
		digits = digits && c >= '0' && c <= '9'
	}
	n := utf8.RuneCount(pin)
	switch {
	case digits && n < minPINDigits:
		return fmt.Errorf("%w: a PIN needs at least %d digits, this one has %d (or use a passphrase of %d characters or more)", ErrWeakPIN, minPINDigits, n, minPassphrase)
	case !digits && n < minPassphrase:
		return fmt.Errorf("%w: a passphrase needs at least %d characters, this one has %d (or use a PIN of %d digits or more)", ErrWeakPIN, minPassphrase, n, minPINDigits)
	}
	return nil
}

// The software vault's count of wrong PINs. freeTries wrong PINs in a row
// cost nothing; after that each try waits firstDelay, doubling with every
// further wrong PIN up to maxDelay: 8,760 tries a year at most, so a
// 6-digit PIN takes on average some 57 years of guessing through the app.
// The count lives in the plaintext meta table, written before the PIN is
// tried, so killing the process during a try does not save it. Someone
// with the file can reset it (editing it, or restoring a copy): it stops
// guessing through the app, not guessing on a stolen file, which only
// Argon2id slows. The TPM vault leaves the count to the TPM.
const (
	freeTries  = 5
	firstDelay = time.Minute
	maxDelay   = time.Hour

	metaFailures = "pin-failures"  // wrong PINs in a row, decimal
	metaFailedAt = "pin-failed-at" // time of the last, Unix seconds
)

// pinDelay is how long after the last of n wrong PINs in a row the next
// try must wait.
func pinDelay(n int) time.Duration {
	if n < freeTries {
		return 0
	}
	d := firstDelay
	for i := freeTries; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// tries reads the count of wrong PINs from meta; a malformed count counts
// as many wrong PINs just now, so that editing it does not free tries.
func tries(meta map[string][]byte, now time.Time) (n int, last time.Time) {
	if meta[metaFailures] == nil {
		return 0, time.Time{}
	}
	n, err1 := strconv.Atoi(string(meta[metaFailures]))
	at, err2 := strconv.ParseInt(string(meta[metaFailedAt]), 10, 64)
	if err1 != nil || err2 != nil || n < 0 {
		return freeTries + 1, now
	}
	return n, time.Unix(at, 0)
}

// countTry refuses a try while the delay after earlier wrong PINs runs,
// and otherwise records this try as wrong until clearTries says otherwise.
func (v *Vault) countTry(ctx context.Context, meta map[string][]byte) error {
	now := v.now()
	n, last := tries(meta, now)
	if until := last.Add(pinDelay(n)); n >= freeTries && now.Before(until) {
		return fmt.Errorf("%w: %d wrong PINs in a row; the next try is possible at %s", ErrLocked, n, until.UTC().Format(time.RFC3339))
	}
	return v.update(ctx, func(t *tx) error {
		for name, value := range map[string]string{
			metaFailures: strconv.Itoa(n + 1),
			metaFailedAt: strconv.FormatInt(now.Unix(), 10),
		} {
			if _, err := t.sql.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, []byte(value)); err != nil {
				return err
			}
		}
		return nil
	})
}

// clearTries forgets the wrong PINs once the right one was given.
func (v *Vault) clearTries(ctx context.Context) error {
	return v.update(ctx, func(t *tx) error { return t.clearTries() })
}

func (t *tx) clearTries() error {
	_, err := t.sql.ExecContext(t.ctx, `DELETE FROM meta WHERE name IN (?, ?)`, metaFailures, metaFailedAt)
	return err
}

// ChangePIN replaces the PIN that opens the vault by newPIN, which must
// meet the policy (CheckPIN), once oldPIN is proven: a wrong oldPIN is
// counted like one at Open (the software vault's count, or the TPM's
// lockout) and changes nothing. The change is one transaction, so a
// crash leaves a vault that opens with exactly one of the two PINs. The
// software vault re-wraps the data key under Argon2id of the new PIN,
// with a fresh salt and the same parameters. The TPM vault seals its
// secret anew under the new PIN for the next chain value and advances
// the chain, as a write that destroys a key does: a copy from before the
// change is dead, so the old PIN opens no copy either.
func (v *Vault) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	if err := CheckPIN(newPIN); err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	var err error
	if v.g != nil {
		err = v.update(ctx, func(t *tx) error {
			if err := v.g.checkPIN(oldPIN); err != nil {
				return err
			}
			v.g.changePIN(newPIN)
			t.destroys = true
			return nil
		})
	} else {
		err = v.rewrap(ctx, oldPIN, newPIN)
	}
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	return nil
}

// rewrap is the software vault's PIN change: oldPIN is tried under the
// count of wrong PINs, and the data key it unwraps is stored wrapped
// under newPIN, with the count cleared, in one transaction.
func (v *Vault) rewrap(ctx context.Context, oldPIN, newPIN []byte) error {
	meta, err := v.meta(ctx)
	if err != nil {
		return err
	}
	if err := v.countTry(ctx, meta); err != nil {
		return err
	}
	return v.update(ctx, func(t *tx) error {
		meta, err := t.meta()
		if err != nil {
			return err
		}
		wrapped := meta[metaWrappedKey]
		w, err := parseWrapped(wrapped)
		if err != nil {
			return err
		}
		dataKey, err := (&argon2Protector{pin: oldPIN}).unwrap(wrapped)
		if err != nil {
			return err
		}
		if wrapped, err = (&argon2Protector{pin: newPIN, params: w.params}).wrap(dataKey); err != nil {
			return err
		}
		if err := t.setWrapped(wrapped); err != nil {
			return err
		}
		return t.clearTries()
	})
}
