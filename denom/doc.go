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
//
// Where to start: Default gives a currency's values as a Set;
// Set.Withdrawal the mix a wallet withdraws; Best the coins a payment moves
// both ways. Counts is the multiset of coins they all speak, and CountsOf
// reads a list of values, as messages carry them, into one.
package denom
