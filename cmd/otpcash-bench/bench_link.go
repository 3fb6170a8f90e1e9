package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// link is a radio-like link: each direction carries bitsPerSecond, one
// chunk after another, and delivers each chunk latency after its last bit
// was sent.
type link struct {
	bitsPerSecond float64
	latency       time.Duration
}

func (l link) String() string {
	return fmt.Sprintf("%g bit/s and %v one-way latency", l.bitsPerSecond, l.latency)
}

// countingListener counts the bytes of every accepted connection, both
// ways, as they cross the socket; with a link it also throttles them.
type countingListener struct {
	net.Listener
	link  *link
	bytes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var nc net.Conn = countingConn{c, &l.bytes}
	if l.link != nil {
		nc = l.link.shape(nc)
	}
	return nc, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// shape puts the link between the application and c, in both directions:
// shaping one end of a connection delays each direction once. The
// application gets one end of a net.Pipe, so deadlines, which the session
// relies on to stop blocked reads, keep working.
func (l link) shape(c net.Conn) net.Conn {
	app, inner := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(c, inner); inner.Close() }()
	go func() { defer wg.Done(); l.pump(inner, c); closeWrite(c) }()
	go func() { wg.Wait(); c.Close() }()
	return app
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	if cc, ok := c.(countingConn); ok {
		closeWrite(cc.Conn)
		return
	}
	c.Close()
}

// pump copies src to dst through the link until src ends or dst fails.
// Reading goes on while earlier chunks wait for their delivery time, so a
// stream of chunks is pipelined as on a real link.
func (l link) pump(src, dst net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time // delivery time
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		var free time.Time // when the link has sent everything queued so far
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				start := time.Now()
				if start.Before(free) {
					start = free
				}
				free = start.Add(time.Duration(float64(n*8) / l.bitsPerSecond * float64(time.Second)))
				q <- chunk{buf[:n], free.Add(l.latency)}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		time.Sleep(time.Until(ch.at))
		if _, err := dst.Write(ch.b); err != nil {
			break
		}
	}
	for range q { // let the reader finish
	}
}
