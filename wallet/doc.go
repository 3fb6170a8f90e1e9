// Package wallet is the framework a wallet app embeds: the paper's
// pre-compiled library that owns the whole life of a coin, so that the app
// developer only builds the user interface.
//
// An app calls Init once, then Open with the owner's PIN, and uses
// Withdraw, RefillKeys, Pay, Receive (or Serve, for a terminal that goes on
// serving past failed sessions), Settle, Redenominate, Reclaim, Deposit,
// Balance and History. It never handles coins, keys or the vault directly.
//
// Guarantees:
//   - a payment never contacts a server: Pay, Receive and Settle need only
//     the two wallets and a local link;
//   - an amount the payer cannot pay exactly is paid with change, in the
//     same session, moving the fewest coins both ways (denom.Best); a plan
//     that cannot be made is refused before anything is sealed, and a payee
//     that gives other change than agreed is reported (ErrChange);
//   - every coin is at all times in exactly one state (held, pending-out,
//     spent with its receipt, deposited, reclaimed), recorded durably
//     before any message that depends on it is sent;
//   - coins sealed to the other wallet whose acknowledgement never arrived,
//     change included, are delivered, first thing, the next time the two
//     wallets meet, in either direction;
//   - coins sealed to a payee that never comes back are credited back by
//     Reclaim once their deposit deadline has passed;
//   - an online step (Withdraw, Redenominate, Deposit) interrupted by a
//     crash is finished by calling it again.
//
// Where to start: the package example (Init, Withdraw, Pay, Receive), then
// the example of each method. A bank account's credentials travel as one
// Account; amounts are int64 minor units, read and written with package
// amount; History returns HistoryEntry values and Options.OnEvent receives
// Event values, each with a typed kind. Payments without a live link use
// Request, PayRequest, ReceiveToken and ImportReceipt. docs/PROTOCOL.md
// describes what happens underneath, docs/SECURITY.md what it protects
// against.
package wallet
