// Package wallet is the framework a wallet app embeds: the paper's
// pre-compiled library that owns the whole life of a coin, so that the app
// developer only builds the user interface.
//
// An app calls Init once, then Open with the owner's PIN, and uses
// Withdraw, RefillKeys, Pay, Receive, Deposit, Balance and History. It never
// handles coins, keys or the vault directly.
//
// Guarantees:
//   - a payment never contacts a server: Pay and Receive need only the two
//     wallets and a local link;
//   - every coin is at all times in exactly one state (held, pending-out,
//     spent with its receipt, deposited), recorded durably before any
//     message that depends on it is sent;
//   - coins sealed to a payee whose acknowledgement never arrived are
//     re-sent, first thing, the next time the same two wallets meet;
//   - an online step (Withdraw, Deposit) interrupted by a crash is finished
//     by calling it again.
package wallet
