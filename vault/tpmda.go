package vault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// DAParams are a TPM's dictionary-attack parameters, which bound how fast
// anyone holding the TPM can guess a TPM vault's PIN. They belong to the
// TPM's owner, not to one vault: every DA-protected object shares them.
type DAParams struct {
	// MaxTries is the count of wrong authorizations at which the TPM
	// locks out (TPM_PT_MAX_AUTH_FAIL).
	MaxTries uint32
	// Recovery is how long the TPM takes to forget one wrong
	// authorization (TPM_PT_LOCKOUT_INTERVAL), whole seconds.
	Recovery time.Duration
	// LockoutRecovery is how long the lockout hierarchy waits after a
	// wrong lockout authorization (TPM_PT_LOCKOUT_RECOVERY), whole
	// seconds; zero: until the TPM restarts.
	LockoutRecovery time.Duration
}

// RecommendedDA are the numbers docs/SECURITY.md argues for: 10 tries,
// then one every 10 minutes (about 19 years for every 6-digit PIN), and a
// day after a wrong lockout authorization.
var RecommendedDA = DAParams{MaxTries: 10, Recovery: 600 * time.Second, LockoutRecovery: 86400 * time.Second}

// ErrDAParams reports dictionary-attack parameters SetDictionaryAttack
// refuses to set.
var ErrDAParams = errors.New("bad dictionary-attack parameters")

func (p DAParams) check() error {
	const most = time.Duration(math.MaxUint32) * time.Second
	switch {
	case p.MaxTries == 0:
		// The TPM would stay locked out: no PIN could ever be tried.
		return fmt.Errorf("%w: max tries 0 locks every TPM vault out for good", ErrDAParams)
	case p.Recovery < time.Second:
		// A recovery time of 0 turns the protection off.
		return fmt.Errorf("%w: recovery %s: at least a second (0 would turn the protection off)", ErrDAParams, p.Recovery)
	case p.Recovery%time.Second != 0 || p.LockoutRecovery%time.Second != 0:
		return fmt.Errorf("%w: recovery %s, lockout recovery %s: the TPM counts whole seconds", ErrDAParams, p.Recovery, p.LockoutRecovery)
	case p.Recovery > most || p.LockoutRecovery < 0 || p.LockoutRecovery > most:
		return fmt.Errorf("%w: recovery %s, lockout recovery %s: outside 0..%s", ErrDAParams, p.Recovery, p.LockoutRecovery, most)
	}
	return nil
}

// SetDictionaryAttack sets the dictionary-attack parameters of the TPM dev
// (DefaultTPM when empty; "swtpm:HOST:PORT" for a simulator) with
// TPM2_DictionaryAttackParameters, authorized by the lockout hierarchy's
// authValue lockoutAuth (empty on a TPM nobody took ownership of). The
// vault never calls it by itself: the parameters are the TPM owner's.
func SetDictionaryAttack(ctx context.Context, dev string, lockoutAuth []byte, p DAParams) error {
	if err := p.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tp, err := openTPM(devOrDefault(dev))
	if err != nil {
		return err
	}
	defer tp.Close()
	params := binary.BigEndian.AppendUint32(nil, p.MaxTries)
	params = binary.BigEndian.AppendUint32(params, uint32(p.Recovery/time.Second))
	params = binary.BigEndian.AppendUint32(params, uint32(p.LockoutRecovery/time.Second))
	// go-tpm has no TPM2_DictionaryAttackParameters: built like NV_Extend.
	if err := rawCommand(tp, tpm2.TPMCCDictionaryAttackParameters, []tpm2.TPMHandle{tpm2.TPMRHLockout}, lockoutAuth, params); err != nil {
		return fmt.Errorf("TPM %s: set the dictionary-attack parameters: %w", devOrDefault(dev), err)
	}
	return nil
}

// DictionaryAttack reads the dictionary-attack parameters of the TPM dev
// (TPM2_GetCapability of TPM_PT_MAX_AUTH_FAIL, TPM_PT_LOCKOUT_INTERVAL and
// TPM_PT_LOCKOUT_RECOVERY).
func DictionaryAttack(ctx context.Context, dev string) (DAParams, error) {
	if err := ctx.Err(); err != nil {
		return DAParams{}, err
	}
	tp, err := openTPM(devOrDefault(dev))
	if err != nil {
		return DAParams{}, err
	}
	defer tp.Close()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTMaxAuthFail), PropertyCount: 3}.Execute(tp)
	if err != nil {
		return DAParams{}, fmt.Errorf("TPM %s: read the dictionary-attack parameters: %w", devOrDefault(dev), err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return DAParams{}, err
	}
	var p DAParams
	seen := 0
	for _, prop := range props.TPMProperty {
		switch prop.Property {
		case tpm2.TPMPTMaxAuthFail:
			p.MaxTries = prop.Value
		case tpm2.TPMPTLockoutInterval:
			p.Recovery = time.Duration(prop.Value) * time.Second
		case tpm2.TPMPTLockoutRecovery:
			p.LockoutRecovery = time.Duration(prop.Value) * time.Second
		default:
			continue
		}
		seen++
	}
	if seen != 3 {
		return DAParams{}, fmt.Errorf("TPM %s: %d of the 3 dictionary-attack parameters in its answer", devOrDefault(dev), seen)
	}
	return p, nil
}
