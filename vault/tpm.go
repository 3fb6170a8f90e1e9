package vault

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/tcp"
)

// The TPM 2.0 protector (docs/SECURITY.md, "The TPM vault").
//
// The data key is a sealed data object under the owner hierarchy's ECC
// SRK: it never exists outside this TPM except when unsealed, and a copy
// of the wallet on another TPM cannot load it (anti-clone). Its policy is
// PolicyAuthValue (the PIN, checked by the TPM under its dictionary-
// attack lockout) and PolicyNV on an NV extend index that belongs to the
// vault: the index holds a hash chain, and every transaction that
// destroys a key extends it (anti-rollback). The data key is re-sealed
// for each new chain value, and an extend cannot be undone, so the
// sealed key of an older copy of the vault can never again be unsealed,
// by this code or any other.
//
// A write is committed first and extended after: the sealed key of a
// state is valid at its own chain value (head) and at the one before
// (prev), so that a crash between the commit and the extend leaves a
// vault that opens (and finishes the extend). The chain step is secret
// and random, derived from the state's own sealed secret
// per write, so of two copies written from one state only the first to
// extend survives: a copy cannot be forked and both halves kept.

const (
	protectorTPM = "tpm2"

	// DefaultTPM is the TPM device the TPM vault uses when none is named:
	// the kernel's resource manager.
	DefaultTPM = "/dev/tpmrm0"

	// swtpmPrefix names a TPM simulator by its command port, host:port;
	// its control port is the next one (swtpm socket --server,--ctrl).
	swtpmPrefix = "swtpm:"

	tpmWrapVersion = 1
	chainSize      = sha256.Size

	// NV indices the owner may use (TCG handle registry, owner range).
	nvFirst = 0x01000000
	nvLast  = 0x013FFFFF
)

// Errors of the TPM vault, testable with errors.Is.
var (
	// ErrOtherTPM: the vault is bound to a TPM that is not this one (a
	// copy of the wallet directory on another machine).
	ErrOtherTPM = errors.New("this vault is bound to another TPM")
	// ErrRollback: the vault is not the TPM's current state of it (an
	// older copy of the wallet directory, restored).
	ErrRollback = errors.New("this copy of the vault is older than the TPM's record of it")
	// ErrProtector: the vault was made with another protector than the
	// one asked for.
	ErrProtector = errors.New("vault protector mismatch")
)

// tpmWrapped is the stored form of the TPM protector's state: which NV
// index it is bound to, the chain value before its last write (prev) and
// the one it is written for (head), and the sealed secret.
type tpmWrapped struct {
	index      tpm2.TPMHandle
	prev, head []byte
	pub, priv  []byte // TPM2B_PUBLIC and TPM2B_PRIVATE contents
}

// chainStep is the step a state extends the chain with, derived from its
// state key: it is not in the file, so that nobody who deletes the index
// and defines it again can replay the chain up to an older copy's value
// without that copy's sealed secret, which needs that value first.
func chainStep(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret[dataKeySize:], nil, "otpcash/v1/vault/tpm-chain-step", chainSize)
	if err != nil {
		panic(err) // hkdf.Key fails only on an impossible length
	}
	return k
}

// extended is the TPM's extend of an NV chain: SHA-256(value || step).
func extended(value, step []byte) []byte {
	h := sha256.New()
	h.Write(value)
	h.Write(step)
	return h.Sum(nil)
}

func (w *tpmWrapped) marshal() []byte {
	b := []byte{tpmWrapVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(w.index))
	b = append(b, w.prev...)
	b = append(b, w.head...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(w.pub)))
	b = append(b, w.pub...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(w.priv)))
	return append(b, w.priv...)
}

// parseTPMWrapped reads the stored state, before anything authenticates
// it (the TPM does, when it loads and unseals).
func parseTPMWrapped(b []byte) (*tpmWrapped, error) {
	const fixed = 1 + 4 + 2*chainSize
	if len(b) < fixed+4 {
		return nil, fmt.Errorf("sealed data key: %d bytes, too short", len(b))
	}
	if b[0] != tpmWrapVersion {
		return nil, fmt.Errorf("sealed data key: unknown version %d", b[0])
	}
	w := &tpmWrapped{index: tpm2.TPMHandle(binary.BigEndian.Uint32(b[1:]))}
	if w.index < nvFirst || w.index > nvLast {
		return nil, fmt.Errorf("sealed data key: NV index %#x outside the owner range", uint32(w.index))
	}
	w.prev, w.head = b[5:5+chainSize], b[5+chainSize:fixed]
	rest := b[fixed:]
	for _, f := range []*[]byte{&w.pub, &w.priv} {
		if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
			return nil, errors.New("sealed data key: truncated")
		}
		n := int(binary.BigEndian.Uint16(rest))
		*f, rest = rest[2:2+n], rest[2+n:]
	}
	if len(rest) != 0 || len(w.pub) == 0 || len(w.priv) == 0 {
		return nil, errors.New("sealed data key: malformed")
	}
	return w, nil
}

// tpmProtector seals the data key to a TPM. It keeps its connection and
// the SRK loaded while the vault is open, to re-seal at every write that
// destroys a key.
type tpmProtector struct {
	dev     string
	pinAuth []byte // the sealed key's authValue, from the PIN
	tpm     transport.TPMCloser
	cmds    atomic.Uint64 // TPM commands sent, for the cost figures

	srk    tpm2.AuthHandle
	srkPub tpm2.TPMTPublic

	// Set once the secret is known (wrap or unwrap): the data key and
	// the state key, sealed together.
	dataKey []byte
	nvName  tpm2.TPM2BName
	cur     *tpmWrapped // the state committed last
	// next and nextSecret are sealed for the transaction being committed.
	next       *tpmWrapped
	nextSecret []byte
	// nextPINAuth, during a PIN change, is the authValue the next state
	// is sealed under.
	nextPINAuth []byte
}

func newTPMProtector(dev string, pin []byte) *tpmProtector {
	return &tpmProtector{dev: devOrDefault(dev), pinAuth: pinAuth(pin)}
}

// devOrDefault is the TPM dev names: DefaultTPM when it is empty.
func devOrDefault(dev string) string {
	if dev == "" {
		return DefaultTPM
	}
	return dev
}

// pinAuth is the sealed key's authValue for pin. No slow hash: only the
// TPM checks it, under its lockout. It is hex, with no zero byte: go-tpm
// (v0.9.8, hmacKeyFromAuthValue) cuts an authValue at any zero byte, not
// only at trailing ones as the TPM does, and its HMAC then fails.
func pinAuth(pin []byte) []byte {
	h := sha256.New()
	h.Write([]byte("otpcash/v1/vault/tpm-pin\x00"))
	h.Write(pin)
	return []byte(hex.EncodeToString(h.Sum(nil)[:16]))
}

func (p *tpmProtector) name() string { return protectorTPM }

// Send counts the commands sent to the TPM; it makes tpmProtector the
// transport every command goes through. A TPM may answer TPM_RC_RETRY
// (it did not start the command: a swtpm does on the first use of a
// DA-protected object after startup) or TPM_RC_YIELDED; the command is
// then sent again as it was, as the specification asks.
func (p *tpmProtector) Send(cmd []byte) ([]byte, error) {
	for try := 0; ; try++ {
		p.cmds.Add(1)
		rsp, err := p.tpm.Send(cmd)
		if err != nil || len(rsp) < 10 || try == maxRetries {
			return rsp, err
		}
		switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:])) {
		case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
			continue
		}
		return rsp, nil
	}
}

// maxRetries bounds the resending of a command the TPM did not start.
const maxRetries = 10

// openTPM opens the TPM device or simulator dev.
func openTPM(dev string) (transport.TPMCloser, error) {
	addr, ok := strings.CutPrefix(dev, swtpmPrefix)
	if !ok {
		t, err := linuxtpm.Open(dev)
		if err != nil {
			return nil, fmt.Errorf("open TPM %s: %w", dev, err)
		}
		return t, nil
	}
	host, port, err := net.SplitHostPort(addr)
	n, err2 := strconv.ParseUint(port, 10, 16)
	if err != nil || err2 != nil || n == 0 || n == 65535 {
		return nil, fmt.Errorf("open TPM %q: want swtpm:HOST:PORT", dev)
	}
	t, err := tcp.Open(tcp.Config{
		CommandAddress:  net.JoinHostPort(host, port),
		PlatformAddress: net.JoinHostPort(host, strconv.FormatUint(n+1, 10)),
	})
	if err != nil {
		return nil, fmt.Errorf("open TPM %s: %w", dev, err)
	}
	return t, nil
}

// connect opens the TPM and loads the SRK, the same on every start of
// the same TPM: it is derived from the owner hierarchy's seed.
func (p *tpmProtector) connect() error {
	t, err := openTPM(p.dev)
	if err != nil {
		return err
	}
	p.tpm = t
	if strings.HasPrefix(p.dev, swtpmPrefix) {
		if err := p.flushLeftovers(); err != nil {
			p.close()
			return err
		}
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(p)
	if err != nil {
		t.Close()
		p.tpm = nil
		return fmt.Errorf("TPM %s: create the SRK: %w", p.dev, err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		p.close()
		return err
	}
	p.srk = tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)}
	p.srkPub = *pub
	return nil
}

// flushLeftovers flushes the objects and sessions loaded in a simulator.
// A swtpm socket has no resource manager: what a killed process left
// loaded stays, and fills the TPM's few slots. The kernel's resource
// manager (/dev/tpmrm0) flushes them itself, and shows none of them.
//
// Sessions are listed by TPM_HT_LOADED_SESSION (0x02) and
// TPM_HT_SAVED_SESSION (0x03), but each is named by its own kind: a
// loaded policy session has a 0x03 handle in the first list.
func (p *tpmProtector) flushLeftovers() error {
	for _, first := range []tpm2.TPMHT{tpm2.TPMHTTransient, tpm2.TPMHTLoadedSession, tpm2.TPMHTSavedSession} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(first) << 24, PropertyCount: 64}.Execute(p)
		if err != nil {
			return fmt.Errorf("TPM %s: list loaded handles: %w", p.dev, err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return err
		}
		for _, h := range hs.Handle {
			if !leftover(first, tpm2.TPMHT(h>>24)) {
				continue
			}
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(p); err != nil {
				return fmt.Errorf("TPM %s: flush %#x: %w", p.dev, uint32(h), err)
			}
		}
	}
	return nil
}

// leftover reports whether a handle of kind got, listed under the
// capability's first, is one to flush: a capability's list ends where
// the next kind's begins.
func leftover(first, got tpm2.TPMHT) bool {
	if first == tpm2.TPMHTTransient {
		return got == tpm2.TPMHTTransient
	}
	return got == tpm2.TPMHTHMACSession || got == tpm2.TPMHTPolicySession
}

func (p *tpmProtector) close() error {
	if p.tpm == nil {
		return nil
	}
	_, err := tpm2.FlushContext{FlushHandle: p.srk.Handle}.Execute(p)
	err = errors.Join(err, p.tpm.Close())
	p.tpm = nil
	return err
}

// nvAuth is the NV index's authValue, which extending it needs: derived
// from the data key (the secret's first part, the same in every state),
// so that only a holder of the key moves the chain.
func nvAuth(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret[:dataKeySize], nil, "otpcash/v1/vault/tpm-nv-auth", sha256.Size)
	if err != nil {
		panic(err) // hkdf.Key fails only on an impossible length
	}
	return k
}

// wrap binds a new vault to the TPM: it defines the vault's NV index,
// seals the data key for the first chain value, then extends the index
// to it. Create commits the vault after, so a crash leaves no vault
// (and at most an unused NV index).
func (p *tpmProtector) wrap(dataKey []byte) ([]byte, error) {
	if err := p.connect(); err != nil {
		return nil, err
	}
	p.dataKey = dataKey
	index, err := p.defineIndex()
	if err != nil {
		return nil, err
	}
	step := chainStep(dataKey)
	w := &tpmWrapped{index: index, prev: make([]byte, chainSize)}
	w.head = extended(w.prev, step)
	// A fresh index holds zeros; its name includes TPMA_NV_WRITTEN, so
	// the policy needs the name after the first extend.
	if err := p.extend(index, step); err != nil {
		return nil, err
	}
	if p.nvName, err = p.readIndexName(index); err != nil {
		return nil, err
	}
	if err := p.seal(w, dataKey, p.pinAuth); err != nil {
		return nil, err
	}
	p.cur = w
	return w.marshal(), nil
}

// defineIndex defines an NV extend index at a free random handle in the
// owner range.
func (p *tpmProtector) defineIndex() (tpm2.TPMHandle, error) {
	for range 16 {
		var b [4]byte
		rand.Read(b[:])
		index := tpm2.TPMHandle(nvFirst + binary.BigEndian.Uint32(b[:])%(nvLast-nvFirst+1))
		_, err := tpm2.NVDefineSpace{
			AuthHandle: tpm2.TPMRHOwner,
			Auth:       tpm2.TPM2BAuth{Buffer: nvAuth(p.dataKey)},
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex:    index,
				NameAlg:    tpm2.TPMAlgSHA256,
				Attributes: nvAttributes(),
				DataSize:   chainSize,
			}),
		}.Execute(p)
		if errors.Is(err, tpm2.TPMRCNVDefined) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("TPM: define the vault's NV index: %w", err)
		}
		return index, nil
	}
	return 0, errors.New("TPM: no free NV index found")
}

// nvAttributes: an extend index, extended with its own authValue, read
// with the owner's authorization (empty by default), and not subject to
// the dictionary-attack lockout, which guards the PIN.
func nvAttributes() tpm2.TPMANV {
	return tpm2.TPMANV{NT: tpm2.TPMNTExtend, AuthWrite: true, OwnerRead: true, NoDA: true}
}

// readIndexName returns the name of index, after checking that it is an
// index of the kind the vault defines: a vault moved to another TPM, or
// a lookalike index, is refused there.
func (p *tpmProtector) readIndexName(index tpm2.TPMHandle) (tpm2.TPM2BName, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(p)
	if errors.Is(err, tpm2.TPMRCHandle) {
		return tpm2.TPM2BName{}, fmt.Errorf("%w: its NV index %#x is not on TPM %s", ErrOtherTPM, uint32(index), p.dev)
	}
	if err != nil {
		return tpm2.TPM2BName{}, fmt.Errorf("TPM: read NV index %#x: %w", uint32(index), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return tpm2.TPM2BName{}, err
	}
	want := nvAttributes()
	want.Written = true
	if pub.Attributes != want || pub.DataSize != chainSize || pub.NameAlg != tpm2.TPMAlgSHA256 || len(pub.AuthPolicy.Buffer) != 0 {
		return tpm2.TPM2BName{}, fmt.Errorf("%w: NV index %#x on TPM %s is not this vault's", ErrOtherTPM, uint32(index), p.dev)
	}
	return rsp.NVName, nil
}

// policy is the sealed key's policy, given the branch whose PolicyNV the
// session ran: PolicyNV(chain == prev) OR PolicyNV(chain == head), then
// PolicyAuthValue. It returns the branches' digests for PolicyOR.
func (p *tpmProtector) branches(w *tpmWrapped) ([]tpm2.TPM2BDigest, error) {
	var out []tpm2.TPM2BDigest
	for _, value := range [][]byte{w.prev, w.head} {
		calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
		if err != nil {
			return nil, err
		}
		if err := p.policyNV(w.index, value, 0).Update(calc); err != nil {
			return nil, err
		}
		out = append(out, tpm2.TPM2BDigest{Buffer: calc.Hash().Digest})
	}
	return out, nil
}

func (p *tpmProtector) policyNV(index tpm2.TPMHandle, value []byte, session tpm2.TPMISHPolicy) tpm2.PolicyNV {
	nv := tpm2.NamedHandle{Handle: index, Name: p.nvName}
	return tpm2.PolicyNV{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:       nv,
		PolicySession: session,
		OperandB:      tpm2.TPM2BOperand{Buffer: value},
		Operation:     tpm2.TPMEOEq,
	}
}

func (p *tpmProtector) authPolicy(w *tpmWrapped) ([]byte, error) {
	br, err := p.branches(w)
	if err != nil {
		return nil, err
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	if err := (tpm2.PolicyOr{PHashList: tpm2.TPMLDigest{Digests: br}}).Update(calc); err != nil {
		return nil, err
	}
	if err := (tpm2.PolicyAuthValue{}).Update(calc); err != nil {
		return nil, err
	}
	return calc.Hash().Digest, nil
}

// seal makes w's sealed data key: a data object under the SRK, bound to
// this TPM, usable only through the policy, and subject to the
// dictionary-attack lockout. The session is salted with the SRK and
// encrypts the data key and the PIN's authValue on their way in.
func (p *tpmProtector) seal(w *tpmWrapped, secret, auth []byte) error {
	digest, err := p.authPolicy(w)
	if err != nil {
		return err
	}
	srk := p.srk
	srk.Auth = tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.AESEncryption(128, tpm2.EncryptIn), tpm2.Salted(p.srk.Handle, p.srkPub))
	rsp, err := tpm2.Create{
		ParentHandle: srk,
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			UserAuth: tpm2.TPM2BAuth{Buffer: auth},
			Data:     tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgKeyedHash,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true},
			AuthPolicy:       tpm2.TPM2BDigest{Buffer: digest},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash,
				&tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		}),
	}.Execute(p)
	if err != nil {
		return fmt.Errorf("TPM: seal the data key: %w", err)
	}
	w.pub, w.priv = tpm2.Marshal(rsp.OutPublic), rsp.OutPrivate.Buffer
	return nil
}

// unwrap unseals the data key of a stored state. The chain must be at the
// state's head, or at its prev (a write committed, not yet extended:
// unwrap extends it).
func (p *tpmProtector) unwrap(wrapped []byte) ([]byte, error) {
	w, err := parseTPMWrapped(wrapped)
	if err != nil {
		return nil, err
	}
	if err := p.connect(); err != nil {
		return nil, err
	}
	if p.nvName, err = p.readIndexName(w.index); err != nil {
		return nil, err
	}
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: w.index, Name: p.nvName},
		Size:       chainSize,
	}.Execute(p)
	if err != nil {
		return nil, fmt.Errorf("TPM: read NV index %#x: %w", uint32(w.index), err)
	}
	chain := rsp.Data.Buffer
	if !bytes.Equal(chain, w.head) && !bytes.Equal(chain, w.prev) {
		return nil, fmt.Errorf("%w: the TPM's chain for it has moved past this copy (an older copy, or a copy another one overtook)", ErrRollback)
	}
	dataKey, err := p.unseal(w, chain, p.pinAuth)
	if err != nil {
		return nil, err
	}
	if len(dataKey) != 2*dataKeySize {
		return nil, fmt.Errorf("TPM: the sealed secret has %d bytes, want %d", len(dataKey), 2*dataKeySize)
	}
	// The policy binds prev and head: a state whose secret unsealed
	// extends to its own head.
	p.dataKey = dataKey
	if bytes.Equal(chain, w.prev) {
		if err := p.extend(w.index, chainStep(dataKey)); err != nil {
			return nil, fmt.Errorf("finish the last write: %w", err)
		}
	}
	p.cur = w
	return dataKey, nil
}

// unseal loads w's sealed key and unseals it in a policy session that
// proves the chain is at value and the PIN's authValue auth.
func (p *tpmProtector) unseal(w *tpmWrapped, value, auth []byte) ([]byte, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](w.pub)
	if err != nil {
		return nil, fmt.Errorf("sealed data key: %w", err)
	}
	load, err := tpm2.Load{
		ParentHandle: p.srk,
		InPrivate:    tpm2.TPM2BPrivate{Buffer: w.priv},
		InPublic:     *pub,
	}.Execute(p)
	if errors.Is(err, tpm2.TPMRCIntegrity) {
		// Another TPM's SRK cannot load it: the integrity check fails.
		return nil, fmt.Errorf("%w: TPM %s cannot load its sealed data key: %v", ErrOtherTPM, p.dev, err)
	}
	if err != nil {
		return nil, fmt.Errorf("TPM: load the sealed data key: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: load.ObjectHandle}.Execute(p)
	branches, err := p.branches(w)
	if err != nil {
		return nil, err
	}
	sess := tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(t transport.TPM, s tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		if _, err := p.policyNV(w.index, value, s).Execute(t); err != nil {
			return err
		}
		if _, err := (tpm2.PolicyOr{PolicySession: s, PHashList: tpm2.TPMLDigest{Digests: branches}}).Execute(t); err != nil {
			return err
		}
		_, err := tpm2.PolicyAuthValue{PolicySession: s}.Execute(t)
		return err
	}, tpm2.Auth(auth), tpm2.AESEncryption(128, tpm2.EncryptOut), tpm2.Salted(p.srk.Handle, p.srkPub))
	rsp, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{Handle: load.ObjectHandle, Name: load.Name, Auth: sess},
	}.Execute(p)
	switch {
	case errors.Is(err, tpm2.TPMRCAuthFail), errors.Is(err, tpm2.TPMRCBadAuth):
		return nil, ErrWrongPIN
	case errors.Is(err, tpm2.TPMRCLockout):
		return nil, fmt.Errorf("%w: the TPM's dictionary-attack lockout is on; try again later", ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("TPM: unseal the data key: %w", err)
	}
	return rsp.OutData.Buffer, nil
}

// prepare seals the data key for the next chain value, for a transaction
// that destroys a key: the caller stores it with the transaction and
// calls advance once that committed.
func (p *tpmProtector) prepare() (wrapped, secret []byte, err error) {
	secret = make([]byte, 2*dataKeySize)
	copy(secret, p.dataKey[:dataKeySize])
	rand.Read(secret[dataKeySize:])
	w := &tpmWrapped{index: p.cur.index, prev: p.cur.head}
	w.head = extended(w.prev, chainStep(secret))
	auth := p.pinAuth
	if p.nextPINAuth != nil {
		auth = p.nextPINAuth
	}
	if err := p.seal(w, secret, auth); err != nil {
		return nil, nil, err
	}
	p.next, p.nextSecret = w, secret
	return w.marshal(), secret, nil
}

// advance extends the chain to the state prepare sealed, after the
// transaction that stored it committed: from then on the sealed key of
// every earlier state is unusable.
func (p *tpmProtector) advance() error {
	w, secret := p.next, p.nextSecret
	p.next, p.nextSecret = nil, nil
	// The new state is committed: its secret is the one to seal from,
	// and its PIN the one to seal under.
	p.dataKey = secret
	if p.nextPINAuth != nil {
		p.pinAuth, p.nextPINAuth = p.nextPINAuth, nil
	}
	if err := p.extend(w.index, chainStep(secret)); err != nil {
		return err
	}
	p.cur = w
	return nil
}

// abandon forgets a prepared state whose transaction did not commit, and
// the PIN it was to be sealed under.
func (p *tpmProtector) abandon() { p.next, p.nextSecret, p.nextPINAuth = nil, nil, nil }

// checkPIN unseals the current state with pin: the TPM says whether it is
// the PIN, and counts a wrong one under its dictionary-attack lockout.
func (p *tpmProtector) checkPIN(pin []byte) error {
	_, err := p.unseal(p.cur, p.cur.head, pinAuth(pin))
	return err
}

func (p *tpmProtector) changePIN(pin []byte) { p.nextPINAuth = pinAuth(pin) }

// extend runs TPM2_NV_Extend(index, step), authorized by the data
// key. go-tpm has no NV_Extend, so the command is built here.
func (p *tpmProtector) extend(index tpm2.TPMHandle, step []byte) error {
	var params []byte
	params = binary.BigEndian.AppendUint16(params, uint16(len(step)))
	params = append(params, step...)
	if err := rawCommand(p, tpm2.TPMCCNVExtend, []tpm2.TPMHandle{index, index}, nvAuth(p.dataKey), params); err != nil {
		return fmt.Errorf("TPM: extend NV index %#x: %w", uint32(index), err)
	}
	return nil
}

// rawCommand sends a command with one password-authorized handle (the
// first of handles) and returns the TPM's response code as an error.
func rawCommand(t transport.TPM, cc tpm2.TPMCC, handles []tpm2.TPMHandle, password, params []byte) error {
	var body []byte
	for _, h := range handles {
		body = binary.BigEndian.AppendUint32(body, uint32(h))
	}
	// TPMS_AUTH_COMMAND: session TPM_RS_PW, empty nonce, no attributes,
	// the password as the HMAC.
	auth := binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMRSPW))
	auth = append(auth, 0, 0, 0)
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(password)))
	auth = append(auth, password...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(auth)))
	body = append(body, auth...)
	body = append(body, params...)
	cmd := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMSTSessions))
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(10+len(body)))
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(cc))
	rsp, err := t.Send(append(cmd, body...))
	if err != nil {
		return err
	}
	if len(rsp) < 10 {
		return fmt.Errorf("TPM response of %d bytes", len(rsp))
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:])); rc != tpm2.TPMRCSuccess {
		return rc
	}
	return nil
}
