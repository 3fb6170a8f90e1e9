// Package fault marks the points where a test may kill the process, to
// prove that every coin survives a crash at each of them.
//
// In a release build Point does nothing and costs nothing. Built with the
// tag faultinject, Point kills the process with SIGKILL when the
// environment variable OTPCASH_FAULT names it: no deferred function runs,
// no buffer is flushed, exactly as when a phone's battery dies.
package fault

// Points are named side/moment. The payer's points are its coin program's
// steps: PayerStep("buildSandbox") is the moment after that step. The
// protocol document (docs/PROTOCOL.md) says what each side holds at each.
const (
	PayeeOffered    = "payee/offered"      // offer accepted, no keys handed out
	PayeeVerified   = "payee/verified"     // coins verified, not stored
	PayeeStored     = "payee/stored"       // coins and receipts stored, receipts not sent
	PayerChange     = "payer/change"       // change arrived, not stored
	PayerChangeKept = "payer/changeStored" // change stored, receipts not sent
	WalletWithdrawn = "wallet/withdrawn"   // the bank answered, coins not stored
	WalletDeposited = "wallet/deposited"   // the bank credited, coins not marked deposited
	BankWithdrawn   = "bank/withdrawn"     // withdrawal committed, no answer sent
	BankDeposited   = "bank/deposited"     // deposit committed, no answer sent
)

// The points of a recovery (wallet.Recover).
const (
	WalletRecoveryClaims = "wallet/recoveryClaims" // claims kept, none sent
	WalletRecovered      = "wallet/recovered"      // the bank answered, the claims not updated
	WalletRecoveryKept   = "wallet/recoveryKept"   // the claims updated, the history not recorded
)

// PayerStep names the point just after the payer's executor finished step.
func PayerStep(step string) string { return "payer/" + step }

// Env is the variable that names the point at which to die.
const Env = "OTPCASH_FAULT"
