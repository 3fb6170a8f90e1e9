package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/otpcash/otpcash/internal/testtpm"
	"github.com/otpcash/otpcash/otp"
)

// newTPMVault creates a TPM vault on a fresh swtpm and returns it closed,
// with its directory and the swtpm's address.
func newTPMVault(t *testing.T, is *issuer, values ...int64) (dir, dev string) {
	t.Helper()
	dev = testtpm.Start(t)
	dir = filepath.Join(t.TempDir(), "wallet")
	v, err := Create(context.Background(), dir, testPIN, &Options{Protector: TPM, TPM: dev})
	if err != nil {
		t.Fatal(err)
	}
	if len(values) > 0 {
		is.withdraw(t, v, "w1", values...)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, dev
}

// copyDir copies the wallet directory src to dst (a copy, or a restore of
// one), replacing dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTPMClone: the wallet directory copied to another TPM neither opens
// nor changes; the original still opens on its own TPM.
func TestTPMClone(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5, 10)
	clone := filepath.Join(t.TempDir(), "clone")
	copyDir(t, dir, clone)
	before := readFile(t, filepath.Join(clone, dbName))

	other := testtpm.Start(t)
	_, err := OpenWith(ctx, clone, testPIN, &Options{TPM: other})
	if !errors.Is(err, ErrOtherTPM) {
		t.Fatalf("open on another TPM: %v, want ErrOtherTPM", err)
	}
	if !bytes.Equal(before, readFile(t, filepath.Join(clone, dbName))) {
		t.Error("the refused open changed the copied vault")
	}

	// The original is untouched: it opens on its TPM and pays.
	v, err := OpenWith(ctx, dir, testPIN, &Options{TPM: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if n := len(held(t, v)); n != 2 {
		t.Fatalf("the original holds %d coins, want 2", n)
	}
}

// TestTPMCloneWithIndex: a copy on another TPM that holds a lookalike NV
// index at the same handle, at the vault's chain value (an attacker who
// unsealed the secret on the original TPM, to learn the chain's step),
// still cannot load the sealed secret.
func TestTPMCloneWithIndex(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5)
	w := storedWrapped(t, dir)
	secret, err := directUnseal(t, dev, w, w.head)
	if err != nil {
		t.Fatal(err)
	}

	other := testtpm.Start(t)
	p := newTPMProtector(other, testPIN)
	if err := p.connect(); err != nil {
		t.Fatal(err)
	}
	p.dataKey = make([]byte, dataKeySize) // the attacker's own index auth
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: tpm2.TPMRHOwner,
		Auth:       tpm2.TPM2BAuth{Buffer: nvAuth(p.dataKey)},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{NVIndex: w.index, NameAlg: tpm2.TPMAlgSHA256, Attributes: nvAttributes(), DataSize: chainSize}),
	}).Execute(p); err != nil {
		t.Fatal(err)
	}
	if err := p.extend(w.index, chainStep(secret)); err != nil {
		t.Fatal(err)
	}
	p.close()
	_, err = OpenWith(ctx, dir, testPIN, &Options{TPM: other})
	if !errors.Is(err, ErrOtherTPM) {
		t.Fatalf("open on another TPM with a lookalike index: %v, want ErrOtherTPM", err)
	}
}

// storedWrapped reads the TPM state stored in the vault in dir.
func storedWrapped(t *testing.T, dir string) *tpmWrapped {
	t.Helper()
	db, err := openDB(filepath.Join(dir, dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b []byte
	if err := db.QueryRow(`SELECT value FROM meta WHERE name = ?`, metaWrappedKey).Scan(&b); err != nil {
		t.Fatal(err)
	}
	w, err := parseTPMWrapped(b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// directUnseal is an attacker's program that talks to the TPM itself: it
// knows the PIN and has the vault file, and tries to unseal the secret of
// w with the policy branch for value.
func directUnseal(t *testing.T, dev string, w *tpmWrapped, value []byte) ([]byte, error) {
	t.Helper()
	p := newTPMProtector(dev, testPIN)
	if err := p.connect(); err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var err error
	if p.nvName, err = p.readIndexName(w.index); err != nil {
		t.Fatal(err)
	}
	return p.unseal(w, value, p.pinAuth)
}

// openKeys counts the private-key records of the vault in dir that secret
// opens, and those it does not.
func openKeys(t *testing.T, dir string, secret []byte) (opened, refused int) {
	t.Helper()
	s, err := newSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(filepath.Join(dir, dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, state, ref, blob FROM record WHERE kind = ?`, kindKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var r rawRecord
		if err := rs.Scan(&r.id, &r.state, &r.ref, &r.blob); err != nil {
			t.Fatal(err)
		}
		var k keyRecord
		if s.open(kindKey, r.id, r.state, r.ref, r.blob, &k) == nil {
			opened++
		} else {
			refused++
		}
	}
	return opened, refused
}

// TestTPMRollback: a snapshot of the wallet directory, a payment, the
// snapshot restored on the same TPM: the restored copy is refused, and no
// direct use of the TPM unseals its data key, while the current state's
// key does unseal that way.
func TestTPMRollback(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5, 10)
	snapshot := filepath.Join(t.TempDir(), "snapshot")
	copyDir(t, dir, snapshot)
	old := storedWrapped(t, snapshot)

	payer, err := OpenWith(ctx, dir, testPIN, &Options{TPM: dev})
	if err != nil {
		t.Fatal(err)
	}
	payee, _ := newVaultOn(t, Software)
	coins := held(t, payer)
	is.pay(t, payer, payee, coins[:1])
	// A second payment, so that the states compared below both come
	// from advances, not from Create.
	payer.Close()
	between := filepath.Join(t.TempDir(), "between")
	copyDir(t, dir, between)
	if payer, err = OpenWith(ctx, dir, testPIN, nil); err != nil {
		t.Fatal(err)
	}
	is.withdraw(t, payer, "w2", 20)
	is.pay(t, payer, payee, coins[1:])
	payer.Close()
	current := filepath.Join(t.TempDir(), "current")
	copyDir(t, dir, current)

	copyDir(t, snapshot, dir)
	before := readFile(t, filepath.Join(dir, dbName))
	if _, err := OpenWith(ctx, dir, testPIN, nil); !errors.Is(err, ErrRollback) {
		t.Fatalf("open of the restored snapshot: %v, want ErrRollback", err)
	}
	if !bytes.Equal(before, readFile(t, filepath.Join(dir, dbName))) {
		t.Error("the refused open changed the restored vault")
	}
	for name, value := range map[string][]byte{"head": old.head, "prev": old.prev} {
		if _, err := directUnseal(t, dev, old, value); err == nil {
			t.Errorf("the snapshot's secret unsealed directly through its %s branch", name)
		}
	}
	// The same direct program unseals the current state's secret: the
	// refusals above are the policy's, not the program's.
	cur := storedWrapped(t, current)
	secret, err := directUnseal(t, dev, cur, cur.head)
	if err != nil {
		t.Fatalf("direct unseal of the current state: %v", err)
	}
	// With it, the current copy's private keys open, and none of the
	// snapshot's: not the one the payment destroyed, nor the others.
	if opened, refused := openKeys(t, current, secret); opened == 0 || refused != 0 {
		t.Errorf("the current secret opens %d of the current copy's keys and not %d", opened, refused)
	}
	for _, old := range []string{snapshot, between} {
		if opened, refused := openKeys(t, old, secret); opened != 0 || refused == 0 {
			t.Errorf("the current secret opens %d of the keys of %s (and not %d): an older copy's keys must stay under its own state key", opened, filepath.Base(old), refused)
		}
	}

	copyDir(t, current, dir)
	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatalf("the current copy: %v", err)
	}
	defer v.Close()
	if n := len(held(t, v)); n != 1 {
		t.Fatalf("the current copy holds %d coins, want 1 (the 20 of the second withdrawal)", n)
	}
}

// TestTPMInterruptedAdvance: a write committed but not extended (the
// process died between the two) opens and finishes the extend, and the
// state before it is dead from then on; of two copies written from one
// state, the one that extends first kills the other.
func TestTPMInterruptedAdvance(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5, 10)
	before := filepath.Join(t.TempDir(), "before")
	copyDir(t, dir, before)

	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The extend after the commit fails, as if the process died there.
	g := v.g.(*tpmProtector)
	inner := g.tpm
	g.tpm = noExtendTPM{inner}
	err = v.update(ctx, func(tx *tx) error {
		tx.destroys = true
		return nil
	})
	if err == nil {
		t.Fatal("a write whose extend failed returned no error")
	}
	if _, err := v.Setting(ctx, "x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("the vault kept working after a failed extend: %v", err)
	}
	g.tpm = inner
	v.Close()
	interrupted := filepath.Join(t.TempDir(), "interrupted")
	copyDir(t, dir, interrupted)

	v, err = OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatalf("open after the interrupted write: %v", err)
	}
	v.Close()
	// Opening finished the extend: the state before the write is dead,
	// the interrupted one is current and stays so.
	if _, err := OpenWith(ctx, before, testPIN, &Options{TPM: dev}); !errors.Is(err, ErrRollback) {
		t.Fatalf("open of the copy before: %v, want ErrRollback", err)
	}
	if v, err = OpenWith(ctx, interrupted, testPIN, nil); err != nil {
		t.Fatalf("second open of the interrupted state: %v", err)
	}
	v.Close()
}

// noExtendTPM is a TPM connection that loses every TPM2_NV_Extend.
type noExtendTPM struct{ transport.TPMCloser }

func (n noExtendTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:])) == tpm2.TPMCCNVExtend {
		return nil, errors.New("TPM gone")
	}
	return n.TPMCloser.Send(cmd)
}

// TestTPMFork: two copies of one state each write: the first to extend
// wins, and the other is refused, also the state before both.
func TestTPMFork(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, _ := newTPMVault(t, is, 5, 10)
	fork := filepath.Join(t.TempDir(), "fork")
	copyDir(t, dir, fork)

	payee, _ := newVaultOn(t, Software)
	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	is.pay(t, v, payee, held(t, v)[:1])
	v.Close()
	if _, err := OpenWith(ctx, fork, testPIN, nil); !errors.Is(err, ErrRollback) {
		t.Fatalf("open of the other copy after a payment: %v, want ErrRollback", err)
	}
}

// setDA sets the TPM's dictionary-attack parameters (the lockout
// hierarchy's authorization is empty on a fresh swtpm).
func setDA(t *testing.T, dev string, maxTries, recovery, lockoutRecovery uint32) {
	t.Helper()
	p := DAParams{MaxTries: maxTries, Recovery: time.Duration(recovery) * time.Second, LockoutRecovery: time.Duration(lockoutRecovery) * time.Second}
	if err := SetDictionaryAttack(context.Background(), dev, nil, p); err != nil {
		t.Fatal(err)
	}
}

// resetLockout ends the lockout, as its owner would with the lockout
// hierarchy's authorization (or as recoveryTime does by waiting).
func resetLockout(t *testing.T, dev string) {
	t.Helper()
	tp, err := openTPM(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if err := rawCommand(tp, tpm2.TPMCCDictionaryAttackLockReset, []tpm2.TPMHandle{tpm2.TPMRHLockout}, nil, nil); err != nil {
		t.Fatalf("TPM2_DictionaryAttackLockReset: %v", err)
	}
}

// TestTPMLockout: wrong PINs until the TPM's lockout; the right PIN is
// refused until the lockout ends.
func TestTPMLockout(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5)
	setDA(t, dev, 3, 3600, 3600)
	for i := range 3 {
		if _, err := OpenWith(ctx, dir, []byte("wrong horse"), nil); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("wrong PIN %d: %v, want ErrWrongPIN", i+1, err)
		}
	}
	for _, pin := range [][]byte{[]byte("wrong horse"), testPIN} {
		if _, err := OpenWith(ctx, dir, pin, nil); !errors.Is(err, ErrLocked) {
			t.Fatalf("PIN %q in lockout: %v, want ErrLocked", pin, err)
		}
	}
	resetLockout(t, dev)
	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatalf("the right PIN after the lockout: %v", err)
	}
	v.Close()
}

// TestTPMProtectorMismatch: opening with another protector than the
// vault's is refused, naming both.
func TestTPMProtectorMismatch(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, _ := newTPMVault(t, is)
	if _, err := OpenWith(ctx, dir, testPIN, &Options{Protector: Software}); !errors.Is(err, ErrProtector) {
		t.Fatalf("TPM vault opened as software: %v, want ErrProtector", err)
	}
	_, sdir := newVaultOn(t, Software)
	if _, err := OpenWith(ctx, sdir, testPIN, &Options{Protector: TPM}); !errors.Is(err, ErrProtector) {
		t.Fatalf("software vault opened as TPM: %v, want ErrProtector", err)
	}
}

// TestTPMCommandsPerPayment counts the TPM commands of a payment's vault
// work at the payer: the same for 1 and for 40 coins.
func TestTPMCommandsPerPayment(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	values := make([]int64, 41)
	for i := range values {
		values[i] = 1
	}
	dir, _ := newTPMVault(t, is, values...)
	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	payee, _ := newVaultOn(t, Software)
	g := v.g.(*tpmProtector)
	t.Logf("TPM commands to open: %d", g.cmds.Load())
	var counts []uint64
	coins := held(t, v)
	for _, batch := range [][]otp.Sandbox{coins[:1], coins[1:41]} {
		before := g.cmds.Load()
		is.pay(t, v, payee, batch)
		counts = append(counts, g.cmds.Load()-before)
	}
	t.Logf("TPM commands per payment: %d (1 coin), %d (40 coins)", counts[0], counts[1])
	if counts[0] != counts[1] || counts[0] != 3 {
		t.Fatalf("TPM commands per payment %v, want 3 each (StartAuthSession, Create, NV_Extend)", counts)
	}
}

// FuzzParseTPMWrapped feeds the parser of the TPM vault's stored state,
// read before the TPM authenticates anything: what it accepts must
// marshal back to the same bytes.
func FuzzParseTPMWrapped(f *testing.F) {
	w := &tpmWrapped{index: nvFirst + 7, prev: make([]byte, chainSize), head: bytes.Repeat([]byte{1}, chainSize), pub: []byte{0, 1, 2}, priv: []byte{3, 4}}
	f.Add(w.marshal())
	f.Add([]byte{})
	f.Add([]byte{tpmWrapVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := parseTPMWrapped(b)
		if err != nil {
			return
		}
		if w.index < nvFirst || w.index > nvLast || len(w.prev) != chainSize || len(w.head) != chainSize {
			t.Fatalf("accepted %+v", w)
		}
		if !bytes.Equal(w.marshal(), b) {
			t.Fatalf("%x parsed and marshalled as %x", b, w.marshal())
		}
	})
}

// TestTPMPINAuthBytes: a PIN whose hash holds zero bytes opens its vault
// ("123456": go-tpm cut such an authValue at the zero, and the right PIN
// was refused as wrong).
func TestTPMPINAuthBytes(t *testing.T) {
	ctx := context.Background()
	dev := testtpm.Start(t)
	dir := filepath.Join(t.TempDir(), "wallet")
	pin := []byte("123456")
	v, err := Create(ctx, dir, pin, &Options{Protector: TPM, TPM: dev})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if v, err = Open(ctx, dir, pin); err != nil {
		t.Fatalf("open with the right PIN: %v", err)
	}
	v.Close()
	if bytes.IndexByte(pinAuth(pin), 0) >= 0 {
		t.Fatal("pinAuth holds a zero byte")
	}
}

// TestTPMIndexReplaced: root on the same TPM deletes the vault's NV index
// and defines one at the same handle that the owner may write, set to
// the vault's chain value: refused as not the vault's index, and its
// sealed key would not unseal anyway (the index's name differs).
func TestTPMIndexReplaced(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5)
	w := storedWrapped(t, dir)
	p := newTPMProtector(dev, testPIN)
	if err := p.connect(); err != nil {
		t.Fatal(err)
	}
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	name, err := p.readIndexName(w.index)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.NVUndefineSpace{AuthHandle: owner, NVIndex: tpm2.NamedHandle{Handle: w.index, Name: name}}).Execute(p); err != nil {
		t.Fatal(err)
	}
	attrs := nvAttributes()
	attrs.OwnerWrite = true
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: owner,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{NVIndex: w.index, NameAlg: tpm2.TPMAlgSHA256, Attributes: attrs, DataSize: chainSize}),
	}).Execute(p); err != nil {
		t.Fatal(err)
	}
	if err := rawCommand(p, tpm2.TPMCCNVExtend, []tpm2.TPMHandle{tpm2.TPMRHOwner, w.index}, nil, append([]byte{0, chainSize}, make([]byte, chainSize)...)); err != nil {
		t.Fatal(err)
	}
	p.close()
	if _, err := OpenWith(ctx, dir, testPIN, nil); !errors.Is(err, ErrOtherTPM) {
		t.Fatalf("open with a replaced index: %v, want ErrOtherTPM", err)
	}
}

// TestTPMLeftovers: a process killed with sessions and objects loaded in a
// swtpm (which has no resource manager) leaves them there, more of them
// than the TPM has slots for; the vault still opens. Policy and HMAC
// sessions have handles of different kinds, so each fills the slots alone.
func TestTPMLeftovers(t *testing.T) {
	for name, kind := range map[string]tpm2.TPMSE{"policy": tpm2.TPMSEPolicy, "hmac": tpm2.TPMSEHMAC} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir, dev := newTPMVault(t, newIssuer(t), 5)
			tp, err := openTPM(dev)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				_, err := tpm2.StartAuthSession{
					TPMKey:      tpm2.TPMRHNull,
					Bind:        tpm2.TPMRHNull,
					NonceCaller: tpm2.TPM2BNonce{Buffer: make([]byte, 16)},
					SessionType: kind,
					Symmetric:   tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgNull},
					AuthHash:    tpm2.TPMAlgSHA256,
				}.Execute(tp)
				if errors.Is(err, tpm2.TPMRCSessionMemory) {
					break
				}
				if err != nil || i > 1000 {
					t.Fatalf("session %d: %v", i, err)
				}
			}
			if _, err := (tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}).Execute(tp); err != nil {
				t.Fatal(err)
			}
			tp.Close() // as a killed process would: nothing flushed
			v, err := OpenWith(ctx, dir, testPIN, nil)
			if err != nil {
				t.Fatalf("open after a killed process's leftovers: %v", err)
			}
			v.Close()
		})
	}
}
