// Package vault is the secure-enclave stand-in of an otpcash wallet: the
// one place where coins and their one-time private keys live.
//
// A vault is one SQLite database file in the wallet directory. The software
// backend encrypts every record with XChaCha20-Poly1305 under a random data
// key; the data key is stored only wrapped by a key derived from the owner's
// PIN or passphrase with Argon2id. The TPM backend (Options.Protector TPM,
// tpm.go) seals the data key to a TPM 2.0 instead, under a policy on an NV
// hash chain that every write destroying a key extends: a copy on another
// TPM, or an older copy on the same one, cannot open (docs/SECURITY.md).
// A swtpm serves one connection at a time, and an open TPM vault holds
// one: open one TPM vault per swtpm at a time (/dev/tpmrm0 has no such
// limit).
//
// Guarantees:
//   - Nothing secret or linkable is stored in the clear: private keys, coin
//     serials and holder public keys appear only inside encrypted records, and
//     rows are found by HMAC-SHA256 of their natural key under a key derived
//     from the data key. Each record's kind, row key and state are its AEAD
//     associated data, so records cannot be swapped between rows and the
//     plaintext state column cannot be edited to move a coin.
//   - Every operation is one SQLite transaction in WAL mode with
//     synchronous=FULL: after a crash at any point a batch is either wholly
//     stored or not at all, and a returned call is durable.
//   - Every coin is in exactly one state: Held, PendingOut, Spent (kept with
//     the payee's receipt), Deposited, Reclaimed or Refused (kept with the
//     bank's reason; never paid, offered or deposited again). A coin that comes back after being
//     paid away is held again as a new entry, next to the receipt of the
//     earlier payment. Sealing a coin to a payee destroys its holder key in
//     the same transaction that records it as PendingOut, and state changes
//     check the current state inside that transaction, so a coin is signed
//     over at most once by this vault. A batch reads and checks all its
//     coins before it writes any (the checks, signatures and encryption
//     run on all CPUs), and refuses a coin or a key named twice in it.
//   - Keys for a withdrawal are stored before the bank is asked, and an
//     exchange key stays usable until a coin arrives on it, so no coin sent
//     to this vault is lost to a crash.
//   - What an open vault keeps decrypted in memory between calls holds no
//     secret: the certificates of the exchange keys it can offer, and the
//     coins it holds (their sandboxes, what a payment shows its payee),
//     each remembered by record version, so that a changed record is
//     decrypted again. Private keys are decrypted for the call that uses
//     them and not kept.
//
// Records: a record's plaintext is one version byte (record form 2, 0x02)
// followed by deterministic CBOR, decoded strictly (record.go). The signed
// objects inside, coins with their chains, receipts and certificates, are
// otp's types and read back to the same values, so their checksums and
// signatures, over canonical JSON, are as they were. Form 1, JSON, written
// by releases up to commit ebc9f3a, is still read (strictly), and a record
// is written in form 2 the next time it is written; opening an old vault
// writes nothing (testdata/vault-v1 is such a vault).
//
// PINs: at least 6 digits or an 8-character passphrase (CheckPIN). The
// software backend counts wrong PINs in the file and delays tries after 5;
// the TPM backend leaves that to the TPM's dictionary-attack lockout.
//
// Limits of the software backend: it cannot stop a user who copies the
// directory and later restores the old copy, getting back holder keys it had
// destroyed. Paying such a coin again makes two transfers signed by one key;
// the bank detects that double spend at deposit and names the key. Nor can
// it rate-limit PIN guesses against a copied file (its count of wrong PINs
// is in the file): Argon2id only makes each guess expensive. A destroyed key is overwritten in the database file, but
// an older, encrypted page holding it can remain in the write-ahead log
// until SQLite reuses that space; to someone with the PIN it is as good as
// an old copy. Go cannot reliably wipe key material from memory.
//
// Where to start: Create makes a vault and Open (OpenWith for a TPM vault)
// opens it; coins enter by withdrawal or Receive and leave through the
// Purse a payer hands to otp.Execute, by deposit or by reclaim.
// Package wallet is its one intended user; docs/SECURITY.md states what it
// protects against and what it cannot.
package vault
