package vault

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// keyProtector wraps and unwraps the vault's data key. The software backend
// derives the wrapping key from the PIN; a TPM 2.0 backend would seal the
// data key to the chip instead. The name of the protector is stored next to
// the wrapped key, so Open can pick the right one.
type keyProtector interface {
	name() string
	wrap(dataKey []byte) ([]byte, error)
	// unwrap fails with ErrWrongPIN when the secret does not open the key.
	unwrap(wrapped []byte) ([]byte, error)
}

// guard is a protector that binds the vault's state to hardware (the TPM
// protector): every transaction that destroys a key stores the data key
// re-wrapped by prepare, and advance moves the hardware's record to it
// once the transaction committed, so that older copies stop opening.
type guard interface {
	// prepare returns the vault's secret with a fresh state key, and it
	// sealed for the next state.
	prepare() (wrapped, secret []byte, err error)
	advance() error
	abandon()
	close() error
	// checkPIN proves pin against the hardware, which counts a wrong one
	// under its lockout; changePIN makes the next prepare seal under pin,
	// which becomes the PIN once advance runs (abandon forgets it).
	checkPIN(pin []byte) error
	changePIN(pin []byte)
}

// The protectors by the names Options.Protector takes; the name stored in
// a vault is the protector's own.
const (
	Software = "software" // Argon2id of the PIN wraps the data key
	TPM      = "tpm"      // a TPM 2.0 seals it: tpm.go
)

// protectorFor returns the protector a vault was created with. dev names
// the TPM of a TPM vault.
func protectorFor(name string, pin []byte, dev string) (keyProtector, error) {
	switch name {
	case protectorArgon2id:
		return &argon2Protector{pin: pin}, nil
	case protectorTPM:
		return newTPMProtector(dev, pin), nil
	}
	return nil, fmt.Errorf("unknown key protector %q", name)
}

// storedName maps Options.Protector onto the name a vault stores.
func storedName(protector string) (string, error) {
	switch protector {
	case "", Software:
		return protectorArgon2id, nil
	case TPM:
		return protectorTPM, nil
	}
	return "", fmt.Errorf("%w: unknown protector %q (want %q or %q)", ErrProtector, protector, Software, TPM)
}

// Options choose the vault's protector and tune it. The zero value makes
// a software vault: Argon2id with 3 passes over 64 MiB with 2 threads
// (a zero field takes its default).
type Options struct {
	// Protector is Software ("" too) or TPM. Open refuses a vault made
	// with another protector than a non-empty Protector names.
	Protector string
	// TPM names the TPM of a TPM vault: a device (DefaultTPM when empty)
	// or "swtpm:HOST:PORT", a simulator's command port. Create records
	// it; Open uses the recorded one when TPM is empty.
	TPM string

	Time      uint32 // Argon2id passes over the memory
	MemoryKiB uint32
	Threads   uint8
}

const (
	defaultTime      = 3
	defaultMemoryKiB = 64 << 10
	defaultThreads   = 2

	// The limits bound what a tampered vault file can make Open spend.
	maxTime      = 64
	maxMemoryKiB = 4 << 20
)

// argon2Params are the parameters a data key was wrapped with.
type argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

func (o *Options) params() (argon2Params, error) {
	p := argon2Params{defaultTime, defaultMemoryKiB, defaultThreads}
	if o != nil {
		if o.Time != 0 {
			p.Time = o.Time
		}
		if o.MemoryKiB != 0 {
			p.MemoryKiB = o.MemoryKiB
		}
		if o.Threads != 0 {
			p.Threads = o.Threads
		}
	}
	return p, p.check()
}

func (p argon2Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxTime)
	case p.Threads < 1:
		return errors.New("argon2id needs at least one thread")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d for %d threads", p.MemoryKiB, 8*uint32(p.Threads), maxMemoryKiB, p.Threads)
	}
	return nil
}

const (
	protectorArgon2id = "argon2id"

	wrapVersion = 1
	saltSize    = 16
	dataKeySize = chacha20poly1305.KeySize

	// version, time, memory, threads, salt: authenticated with the wrapped
	// key, so a changed parameter fails like a wrong PIN.
	wrapHeaderSize = 1 + 4 + 4 + 1 + saltSize
	wrappedSize    = wrapHeaderSize + chacha20poly1305.NonceSizeX + dataKeySize + chacha20poly1305.Overhead
)

// argon2Protector wraps the data key under Argon2id(PIN). params are used
// when wrapping; unwrapping uses the parameters stored with the key.
type argon2Protector struct {
	pin    []byte
	params argon2Params
}

func (a *argon2Protector) name() string { return protectorArgon2id }

func (a *argon2Protector) wrap(dataKey []byte) ([]byte, error) {
	if err := a.params.check(); err != nil {
		return nil, err
	}
	out := make([]byte, wrapHeaderSize+chacha20poly1305.NonceSizeX, wrappedSize)
	out[0] = wrapVersion
	binary.BigEndian.PutUint32(out[1:], a.params.Time)
	binary.BigEndian.PutUint32(out[5:], a.params.MemoryKiB)
	out[9] = a.params.Threads
	rand.Read(out[10:]) // salt and nonce; crypto/rand.Read never fails
	aead, err := chacha20poly1305.NewX(a.kek(a.params, out[10:wrapHeaderSize]))
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, out[wrapHeaderSize:], dataKey, out[:wrapHeaderSize]), nil
}

func (a *argon2Protector) unwrap(wrapped []byte) ([]byte, error) {
	w, err := parseWrapped(wrapped)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(a.kek(w.params, w.salt))
	if err != nil {
		return nil, err
	}
	key, err := aead.Open(nil, w.nonce, w.sealed, wrapped[:wrapHeaderSize])
	if err != nil {
		return nil, ErrWrongPIN
	}
	return key, nil
}

func (a *argon2Protector) kek(p argon2Params, salt []byte) []byte {
	k := argon2.IDKey(a.pin, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	// Argon2id's memory (64 MiB by default), garbage once it returns, is
	// collected and handed back to the operating system now. Left to the
	// collector, it was live at the collection its allocation started,
	// which set the next heap goal at twice its size: a wallet that had
	// just opened its vault then allocated hundreds of megabytes of fresh
	// memory before collecting again, each page a fault (its first
	// payments of 500 coins cost twice the CPU of later ones, and its
	// resident memory passed 300 MB). The collection costs a few
	// milliseconds beside the derivation's hundred or more, and the
	// kernel, not a later allocation, gets the PIN-derived blocks. It is
	// the whole process's: an app that embeds the wallet beside a large
	// heap of its own pays a full collection at each opening of the vault
	// and each change of PIN, which are rare.
	debug.FreeOSMemory()
	return k
}

type wrappedKey struct {
	params              argon2Params
	salt, nonce, sealed []byte
}

// parseWrapped reads the stored form of a wrapped data key. It is read
// before anything is authenticated, so it checks the parameters it will
// spend time and memory on.
func parseWrapped(b []byte) (wrappedKey, error) {
	if len(b) != wrappedSize {
		return wrappedKey{}, fmt.Errorf("wrapped data key: %d bytes, want %d", len(b), wrappedSize)
	}
	if b[0] != wrapVersion {
		return wrappedKey{}, fmt.Errorf("wrapped data key: unknown version %d", b[0])
	}
	w := wrappedKey{
		params: argon2Params{
			Time:      binary.BigEndian.Uint32(b[1:]),
			MemoryKiB: binary.BigEndian.Uint32(b[5:]),
			Threads:   b[9],
		},
		salt:   b[10:wrapHeaderSize],
		nonce:  b[wrapHeaderSize : wrapHeaderSize+chacha20poly1305.NonceSizeX],
		sealed: b[wrapHeaderSize+chacha20poly1305.NonceSizeX:],
	}
	if err := w.params.check(); err != nil {
		return wrappedKey{}, fmt.Errorf("wrapped data key: %w", err)
	}
	return w, nil
}
