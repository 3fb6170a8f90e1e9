// Package p2p is the offline payment session of otpcash: the secure channel,
// framing and messages over which a payer hands coins to a payee standing next
// to it, with no server involved.
//
// A session runs over any byte stream (TCP on the local network for now).
// Dial or Client opens it as the payer, Accept or Server as the payee; the
// payer drives it with a Payer, which is the otp.Peer the coin executor talks
// to, and the payee answers with Serve and a Handler backed by its wallet.
//
// Guarantees:
//   - confidentiality and integrity: everything after the handshake is
//     encrypted and authenticated with Noise XX (X25519, ChaCha20-Poly1305,
//     SHA-256), bound to the prologue "otpcash/v1/p2p";
//   - mutual key possession: each side proves it holds the private half of
//     the static key the other sees as PeerID, so the two recognise each
//     other across sessions, and a payer re-sends coins left pending-out by
//     a broken session to the payee they were sealed for;
//   - protection against a man in the middle: both screens show SAS, six
//     digits derived from the handshake hash. A relay that runs its own
//     handshakes with both sides ends up with two different hashes, and a
//     commitment in the handshake stops it from searching for keys that make
//     the two strings agree, so it is caught with probability 1 - 10^-6 when
//     the users compare them;
//   - bounded reads: handshake messages, frames, messages and the number of
//     items in a message have hard limits, checked before memory is
//     allocated for them;
//   - bounded waits: the handshake and every message have a deadline
//     (DefaultHandshakeTimeout, Conn.SetMessageTimeout) whatever the
//     context's, so a peer that stalls fails with ErrTimeout;
//   - fail closed: a truncated, oversized or forged frame leaves the Conn
//     unusable, an unknown message type or field, or a message out of order,
//     ends the session with an error message to the peer, and the error is
//     returned to the caller wrapping one of the sentinel errors.
//
// What the package does not do: it does not verify coins, exchange keys or
// receipts (the otp executor, the wallet and its vault do), and it does not
// persist anything: the payer records sealed coins as pending-out before
// Send, and the payee persists received coins before its Handler returns
// the receipts.
//
// On the wire (protocol version 4) the hellos are JSON, which every version
// reads, and every later message deterministic CBOR that carries the otp
// values compactly and rebuilds them field for field (wire.go), so every
// signature is checked over the bytes it was made on.
//
// Where to start: docs/PROTOCOL.md gives the messages and their order, and
// package wallet is the user of this one (wallet/pay.go): an app does not
// call it directly.
package p2p
