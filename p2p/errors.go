package p2p

import (
	"errors"
	"fmt"
)

// Errors callers can test with errors.Is. Returned errors wrap them with the
// details of what was wrong.
var (
	// ErrHandshake: the peer failed to prove its keys, or broke its
	// commitment; a tampered handshake ends here.
	ErrHandshake = errors.New("handshake failed")
	// ErrFrameTooLarge: a frame longer than the current phase allows.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMessageTooLarge: a message over MaxMessageSize, announced by the
	// peer or about to be sent.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrDecrypt: a record that was forged, altered, replayed or reordered.
	ErrDecrypt = errors.New("record failed authentication")
	// ErrProtocol: a malformed message, a message out of order, or records
	// that do not frame a message as the sender must.
	ErrProtocol = errors.New("protocol violation")
	// ErrTimeout: the peer took longer than DefaultHandshakeTimeout over
	// the handshake, or than the Conn's message timeout over a message.
	ErrTimeout = errors.New("peer too slow")
	// ErrVersion: the peer does not speak Version.
	ErrVersion = errors.New("no common protocol version")
	// ErrKeypair: the caller's static Keypair is malformed, or its halves
	// do not belong together; nothing was sent.
	ErrKeypair = errors.New("bad static keypair")
)

// Error codes the package itself sends in error messages. Handlers may send
// others through a *RemoteError.
const (
	CodeProtocol = "protocol" // a malformed or out-of-order message
	CodeVersion  = "version"  // no common protocol version
	CodeDeclined = "declined" // the payee declined the offer
	CodeRefused  = "refused"  // the payee's wallet refused a request
)

// RemoteError is an error message: the peer's reason for ending the session.
// A *RemoteError returned by a Handler, or wrapped in its error, is what the
// payer is told; any other handler error reaches the payer only as a code.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer error %s: %s", e.Code, e.Message)
}

// refusal is what the payer is told when a handler fails. Only a
// *RemoteError's text crosses the wire: any other error may describe the
// payee's vault, which is none of the payer's business.
func refusal(err error, code, message string) *RemoteError {
	if re, ok := errors.AsType[*RemoteError](err); ok && re.Code != "" {
		return re
	}
	return &RemoteError{Code: code, Message: message}
}

// violation is an error for a peer that broke the protocol.
func violation(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
