package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// recordKey is the fixed key of the golden frames: with it, encryption is
// deterministic.
var recordKey = [32]byte{0: 'o', 1: 't', 2: 'p', 31: 1}

func recordWriter(w io.Writer) *Conn {
	return &Conn{w: w, enc: noise.UnsafeNewCipherState(suite, recordKey, 0)}
}

func recordReader(r io.Reader) *Conn {
	return &Conn{r: r, dec: noise.UnsafeNewCipherState(suite, recordKey, 0), frame: make([]byte, maxRecord)}
}

// seal encodes msg as records under the fixed key.
func seal(t testing.TB, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := recordWriter(&buf).writeRecords(msg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawRecords encrypts the given plaintexts as consecutive records, however
// they are cut.
func rawRecords(t *testing.T, plains ...[]byte) []byte {
	t.Helper()
	cs := noise.UnsafeNewCipherState(suite, recordKey, 0)
	var out []byte
	for _, p := range plains {
		at := len(out)
		out, _ = cs.Encrypt(append(out, 0, 0), nil, p)
		binary.BigEndian.PutUint16(out[at:], uint16(len(out)-at-2))
	}
	return out
}

func header(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func TestRecordsRoundTrip(t *testing.T) {
	first := maxRecordPlain - headerSize // the most the first record holds
	for _, n := range []int{0, 1, first, first + 1, 3*maxRecordPlain + 7, MaxMessageSize} {
		msg := bytes.Repeat([]byte{'x'}, n)
		wire := seal(t, msg)
		records := (headerSize + n + maxRecordPlain - 1) / maxRecordPlain
		if want := headerSize + n + records*(2+tagSize); len(wire) != want {
			t.Errorf("%d bytes: %d on the wire, want %d", n, len(wire), want)
		}
		in := bytes.NewReader(wire)
		got, err := recordReader(in).readRecords()
		if err != nil || !bytes.Equal(got, msg) || in.Len() != 0 {
			t.Errorf("%d bytes: read back %d bytes, %d left over, %v", n, len(got), in.Len(), err)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	short := seal(t, []byte(`{"type":"done","body":{}}`))
	long := seal(t, bytes.Repeat([]byte{'x'}, maxRecordPlain+100))
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1
		return b
	}
	length := func(b []byte, delta int) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint16(b, uint16(int(binary.BigEndian.Uint16(b))+delta))
		return b
	}
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"cut in the length", short[:1], io.ErrUnexpectedEOF},
		{"cut in the record", short[:len(short)-1], io.ErrUnexpectedEOF},
		{"cut between records", long[:2+maxRecord], io.ErrUnexpectedEOF},
		{"cut in the second record", long[:len(long)-1], io.ErrUnexpectedEOF},
		{"flipped ciphertext", flip(short, 3), ErrDecrypt},
		{"flipped tag", flip(short, len(short)-1), ErrDecrypt},
		{"flipped second record", flip(long, len(long)-5), ErrDecrypt},
		{"length one short", length(short, -1), ErrDecrypt},
		{"length one long", length(short, 1), io.ErrUnexpectedEOF},
		{"replayed record", append(bytes.Clone(short), short...), ErrDecrypt},
		{"announced too large", rawRecords(t, header(MaxMessageSize+1)), ErrMessageTooLarge},
		{"announced 4 GiB", rawRecords(t, header(1<<32-1)), ErrMessageTooLarge},
		{"record shorter than a header", rawRecords(t, []byte{0, 0}), ErrProtocol},
		{"empty record", rawRecords(t, nil), ErrProtocol},
		{"message cut short", rawRecords(t, append(header(10), "12345"...), []byte("67890")), ErrProtocol},
		{"message longer than announced", rawRecords(t, append(header(2), "123"...)), ErrProtocol},
		{"second record overlong", rawRecords(t, append(header(maxRecordPlain), make([]byte, maxRecordPlain-headerSize)...), make([]byte, headerSize+1)), ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Read until the stream fails: a replayed record follows a good one.
			c := recordReader(bytes.NewReader(tt.wire))
			var err error
			for err == nil {
				_, err = c.readRecords()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("read = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadFrameLimit(t *testing.T) {
	buf := make([]byte, 10)
	for n, want := range map[int]error{10: nil, 11: ErrFrameTooLarge, 0xffff: ErrFrameTooLarge} {
		wire := append(binary.BigEndian.AppendUint16(nil, uint16(n)), make([]byte, n)...)
		if _, err := readFrame(bytes.NewReader(wire), buf); !errors.Is(err, want) {
			t.Errorf("frame of %d bytes into 10: %v, want %v", n, err, want)
		}
	}
}

// pipeConn returns a Conn over one end of a pipe, keyed to match the fixed
// record key, and the other end.
func pipeConn(t *testing.T) (*Conn, net.Conn) {
	a, b := net.Pipe()
	c := newConn(a)
	c.enc = noise.UnsafeNewCipherState(suite, recordKey, 0)
	c.dec = noise.UnsafeNewCipherState(suite, recordKey, 0)
	t.Cleanup(func() { a.Close(); b.Close() })
	return c, b
}

func TestReadHonoursContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := pipeConn(t)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		if _, err := c.readMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read from a silent peer = %v, want %v", err, context.DeadlineExceeded)
		}
		// A read cut off halfway would leave the stream out of step.
		if _, err := c.readMessage(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("read after a timeout = %v, want the timeout again", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		c, _ := pipeConn(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(30*time.Millisecond, cancel)
		if _, err := c.readMessage(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("read = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("done before the read", func(t *testing.T) {
		c, peer := pipeConn(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.readMessage(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("read = %v, want %v", err, context.Canceled)
		}
		// Nothing was read, so the Conn is still good.
		go peer.Write(seal(t, []byte("ok")))
		if msg, err := c.readMessage(t.Context()); err != nil || string(msg) != "ok" {
			t.Errorf("read after a read that never started = %q, %v", msg, err)
		}
	})
	t.Run("write", func(t *testing.T) {
		c, _ := pipeConn(t)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		if err := c.writeMessage(ctx, []byte("nobody reads this")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("write to a peer that does not read = %v, want %v", err, context.DeadlineExceeded)
		}
	})
}
