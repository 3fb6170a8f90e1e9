// Package denom is about denominations: a currency's set of coin and note
// values, the mix of coins a wallet withdraws, and the coins a payment
// moves.
//
// A payment that the payer cannot make exactly is made with change: the
// payer sends more and the payee gives the difference back, offline, in the
// same session. Best plans such a payment from both sides' coins and moves
// the fewest coins in both directions together; it is exact and optimal
// within the bounds documented on it, and says what is missing when no plan
// exists. Greedy is the simple method people use at a till, kept as the
// yardstick Best is measured against.
//
// Values are int64 minor units (cents). Nothing here does I/O.
package denom
