// Package otp defines the coin of otpcash as a one-time program (OTP), as in
// "A Sustainable Approach to Delivering Programmable Peer-to-Peer Offline
// Payments" (Sensors 2023), and everything needed to check it offline.
//
// A coin is a signed JSON document with a static section (Data: the serial
// token, value, issuer, first holder) and a behavioural section (CallMethod:
// the ordered steps a wallet must run to spend it). A held coin is a Sandbox:
// the coin plus its chain of transfers, each link signed by the previous
// holder's one-time key and naming the next holder's bank-certified exchange
// key.
//
// Guarantees:
//   - every signed or hashed object is canonicalised with RFC 8785 (JCS) and
//     signed under a domain-separation label, so a signature for one purpose
//     never verifies for another;
//   - decoding is strict: unknown fields, unknown versions and unknown
//     algorithms are refused (fail closed);
//   - the executor refuses a program with an unknown, missing or misplaced
//     step before any step with a side effect runs, naming the step.
//
// The package does no I/O: the network and the vault reach the executor
// through the Peer and Purse interfaces.
//
// Where to start: Coin and Sandbox are the formats; Catalogue is the bank's
// signed list of keys, which a wallet pins; NewVerifier checks coins,
// chains and exchange keys against it; Execute runs a coin's program for a
// payer (a Run, with a Peer and a Purse); equal.go holds the comparisons
// of the formats. docs/PROTOCOL.md specifies the formats and signatures,
// docs/PROGRAMS.md the conditions a program can carry, their variables and
// their limits. An app uses package wallet, not this one.
package otp
