package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
)

// MaxMessageSize is the largest message, in bytes, either side sends or
// accepts. A sealed coin takes about 450 bytes and 100 to 350 more for each
// earlier transfer, so a round of MaxBatch coins may not fit in one message:
// Payer splits it.
const MaxMessageSize = 8 << 20

// On the wire a message is a sequence of frames, each a 16-bit big-endian
// length and that many bytes: the Noise specification's own framing, which
// makes a frame longer than a Noise message (65535 bytes) unrepresentable.
// After the handshake every frame is one encrypted record. The plaintext of
// a message's records, concatenated, is a 32-bit big-endian length and the
// message; it is cut into records of maxRecordPlain bytes and a shorter last
// one, so each message has exactly one encoding. The length is inside the
// encryption, so no one but the peer can make the reader allocate.
const (
	maxRecord      = noise.MaxMsgLen
	tagSize        = 16 // ChaCha20-Poly1305
	maxRecordPlain = maxRecord - tagSize
	headerSize     = 4
)

// How long a side waits for its peer. A peer that sends part of a message
// and then nothing must not hold the other side as long as it likes, so
// every wait has a deadline, also when the caller's context has none; a
// wait that outlasts one fails with ErrTimeout.
const (
	// DefaultHandshakeTimeout bounds a whole handshake: three messages
	// computed by machines, not people.
	DefaultHandshakeTimeout = 30 * time.Second
	// DefaultMessageTimeout bounds the wait for each message of a session,
	// from the moment the reader starts waiting to the message's last byte
	// (and each write). It leaves time for a person to confirm the short
	// authentication string or an offer on the other side.
	DefaultMessageTimeout = 60 * time.Second
)

// handshakeTimeout is DefaultHandshakeTimeout, shortened by tests that
// play a silent peer.
var handshakeTimeout = DefaultHandshakeTimeout

// Conn is an established session channel. Its methods other than Close,
// BytesSent and BytesReceived must not be called concurrently: a session is
// a strict alternation of requests and replies.
//
// After a framing, decryption or I/O error the Conn is unusable: a stream
// that lost its place cannot be trusted to find it again.
type Conn struct {
	nc       net.Conn
	r        io.Reader // nc, counted
	w        io.Writer // nc, counted
	enc, dec *noise.CipherState
	peer     []byte
	sas      string
	frame    []byte        // one received record, reused
	err      error         // why the Conn is unusable
	timeout  time.Duration // for each message; see SetMessageTimeout
	codec    codec

	sent, received atomic.Int64
}

func newConn(nc net.Conn) *Conn {
	c := &Conn{nc: nc, frame: make([]byte, maxRecord), timeout: DefaultMessageTimeout}
	c.r = countingReader{nc, &c.received}
	c.w = countingWriter{nc, &c.sent}
	return c
}

// SetMessageTimeout bounds each later read or write of a message to d
// (DefaultMessageTimeout when d is not positive), whatever the context's
// deadline, which still applies when it is sooner. Call it before the
// session starts, not concurrently with it.
func (c *Conn) SetMessageTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultMessageTimeout
	}
	c.timeout = d
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// BytesSent returns the number of bytes written to the wire, handshake
// included.
func (c *Conn) BytesSent() int64 { return c.sent.Load() }

// BytesReceived returns the number of bytes read from the wire, handshake
// included.
func (c *Conn) BytesReceived() int64 { return c.received.Load() }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n.Add(int64(n))
	return n, err
}

type deadliner interface{ SetDeadline(time.Time) error }

// bound makes ctx interrupt blocking I/O on d until release is called, and
// a timeout, if positive, end it after that long. Reads and writes on a
// net.Conn ignore contexts: a deadline is the only way to stop them, so
// cancellation sets one in the past.
func bound(ctx context.Context, d deadliner, timeout time.Duration) (release func(), err error) {
	deadline, _ := ctx.Deadline() // zero, for none, clears an earlier one
	if t := time.Now().Add(timeout); timeout > 0 && (deadline.IsZero() || t.Before(deadline)) {
		deadline = t
	}
	if err := d.SetDeadline(deadline); err != nil {
		return nil, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		d.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // or it could set its deadline after ours is cleared
		}
		d.SetDeadline(time.Time{})
	}, nil
}

// ioErr reports an I/O error that ctx caused as ctx's error, so callers can
// test for context.DeadlineExceeded and context.Canceled, and one that a
// timeout of bound caused as ErrTimeout.
func ioErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's timer may fire just before ctx's own.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// readFrame reads one frame into buf, whose length is the largest frame the
// caller accepts.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("peer closed the connection: %w", err)
		}
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(buf) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	return buf[:n], nil
}

// readRecord reads and decrypts the next record, appending its plaintext,
// which must be exactly want bytes, to dst.
func (c *Conn) readRecord(dst []byte, want int) ([]byte, error) {
	frame, err := readFrame(c.r, c.frame)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("truncated message: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, err
	}
	if len(frame) != want+tagSize {
		return nil, violation("record of %d bytes where %d were due", len(frame), want+tagSize)
	}
	out, err := c.dec.Decrypt(dst, nil, frame)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	return out, nil
}

// readRecords reads one message. The first record is read whole, before
// its length is known; the message is allocated only after its length has
// been checked, and the rest is decrypted straight into it.
func (c *Conn) readRecords() ([]byte, error) {
	frame, err := readFrame(c.r, c.frame)
	if err != nil {
		return nil, err
	}
	first, err := c.dec.Decrypt(frame[:0], nil, frame)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	if len(first) < headerSize {
		return nil, violation("record of %d bytes cannot start a message", len(first))
	}
	n := int64(binary.BigEndian.Uint32(first))
	if n > MaxMessageSize {
		return nil, fmt.Errorf("%w: peer announced %d bytes, limit %d", ErrMessageTooLarge, n, MaxMessageSize)
	}
	if want := min(maxRecordPlain, headerSize+int(n)); len(first) != want {
		return nil, violation("first record holds %d bytes where %d were due", len(first), want)
	}
	msg := append(make([]byte, 0, n), first[headerSize:]...)
	for len(msg) < int(n) {
		if msg, err = c.readRecord(msg, min(maxRecordPlain, int(n)-len(msg))); err != nil {
			return nil, err
		}
	}
	return msg, nil
}

// writeRecords encrypts msg into records, all in one buffer so that a
// message costs one write.
func (c *Conn) writeRecords(msg []byte) error {
	plain := binary.BigEndian.AppendUint32(make([]byte, 0, headerSize+len(msg)), uint32(len(msg)))
	plain = append(plain, msg...)
	records := (len(plain) + maxRecordPlain - 1) / maxRecordPlain
	out := make([]byte, 0, len(plain)+records*(2+tagSize))
	for len(plain) > 0 {
		n := min(len(plain), maxRecordPlain)
		at := len(out)
		var err error
		if out, err = c.enc.Encrypt(append(out, 0, 0), nil, plain[:n]); err != nil {
			return err
		}
		binary.BigEndian.PutUint16(out[at:], uint16(len(out)-at-2))
		plain = plain[n:]
	}
	_, err := c.w.Write(out)
	return err
}

func (c *Conn) readMessage(ctx context.Context) ([]byte, error) {
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	release, err := bound(ctx, c.nc, c.timeout)
	if err != nil {
		return nil, c.broken(ctx, err)
	}
	defer release()
	msg, err := c.readRecords()
	if err != nil {
		return nil, c.broken(ctx, err)
	}
	return msg, nil
}

// writeMessage sends msg, which must be at most MaxMessageSize bytes.
func (c *Conn) writeMessage(ctx context.Context, msg []byte) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	release, err := bound(ctx, c.nc, c.timeout)
	if err != nil {
		return c.broken(ctx, err)
	}
	defer release()
	if err := c.writeRecords(msg); err != nil {
		return c.broken(ctx, err)
	}
	return nil
}

// ready reports whether an operation may start. One that does not start
// leaves the stream untouched, so a done ctx does not break the Conn.
func (c *Conn) ready(ctx context.Context) error {
	if c.err != nil {
		return fmt.Errorf("connection unusable after an earlier failure: %w", c.err)
	}
	return ctx.Err()
}

// broken records why the Conn is unusable.
func (c *Conn) broken(ctx context.Context, err error) error {
	c.err = ioErr(ctx, err)
	return c.err
}

// send encodes and sends one message.
func (c *Conn) send(ctx context.Context, m message) error {
	b, err := c.codec.encode(m)
	if err != nil {
		return err
	}
	return c.writeMessage(ctx, b)
}

// recv reads the next message. An error message from the peer is returned
// as a *RemoteError; a message that does not decode ends the session.
func (c *Conn) recv(ctx context.Context) (message, error) {
	b, err := c.readMessage(ctx)
	if err != nil {
		return nil, err
	}
	m, err := c.codec.decode(b)
	if err != nil {
		return nil, c.reject(ctx, err, CodeProtocol)
	}
	if re, ok := m.(*RemoteError); ok {
		return nil, re
	}
	return m, nil
}

// abort tells the peer why the session ends and returns err. Telling is
// best effort, and skipped when the link itself has failed: err is what
// matters.
func (c *Conn) abort(ctx context.Context, err error, why *RemoteError) error {
	// A long text, such as a decoder's complaint quoting the peer's input,
	// is cut rather than let the whole message fail its bounds.
	clipped := *why
	clipped.Message = strings.ToValidUTF8(clipped.Message[:min(len(clipped.Message), maxText)], "")
	_ = c.send(ctx, &clipped)
	return err
}

// reject ends the session over something the peer did wrong, telling it
// what: the text is the package's own, so it holds nothing secret.
func (c *Conn) reject(ctx context.Context, err error, code string) error {
	return c.abort(ctx, err, &RemoteError{Code: code, Message: err.Error()})
}

// expect reads the next message, which must be a T: anything else ends the
// session.
func expect[T message](ctx context.Context, c *Conn) (T, error) {
	var zero T
	m, err := c.recv(ctx)
	if err != nil {
		return zero, err
	}
	t, ok := m.(T)
	if !ok {
		err := violation("unexpected %s from the peer, wanted %s", m.kind(), zero.kind())
		return zero, c.reject(ctx, err, CodeProtocol)
	}
	return t, nil
}

// roundTrip sends m and reads the reply, which must be a T.
func roundTrip[T message](ctx context.Context, c *Conn, m message) (T, error) {
	if err := c.send(ctx, m); err != nil {
		var zero T
		return zero, err
	}
	return expect[T](ctx, c)
}
