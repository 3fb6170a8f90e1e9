package bank

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

// certify certifies a merchant's one-time public keys, in the clear, as
// exchange keys carrying its attributes attrs.
func (b *Bank) certify(ctx context.Context, pubs []ed25519.PublicKey, attrs map[string]string) ([]otp.ExchangeKey, error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return nil, err
	}
	expires := now.Add(b.cfg.ExchangeKeyLifetime)
	keys := make([]otp.ExchangeKey, len(pubs))
	for i, pub := range pubs {
		if keys[i], err = ring.exchange.Certify(pub, expires, attrs); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// certifyBlind signs blinded anonymous exchange keys with the blind
// exchange-certification key keyID, which must be the one that signs now:
// the bank learns nothing of the keys, so it cannot tell at deposit which
// wallet a coin was paid to.
func (b *Bank) certifyBlind(ctx context.Context, keyID string, blinded [][]byte) ([]string, error) {
	ring, err := b.keyring(ctx, b.now())
	if err != nil {
		return nil, err
	}
	if ring.anon.Key.KeyID != keyID {
		return nil, api.Errorf(http.StatusBadRequest, api.CodeUnknownKey,
			"%q is not the blind exchange-certification key that signs now (%q); fetch GET /v1/catalogue", keyID, ring.anon.Key.KeyID)
	}
	sigs := make([]string, len(blinded))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, m := range blinded {
		g.Go(func() error {
			sig, err := ring.anon.BlindSign(m)
			if err != nil {
				return blindSignError(fmt.Sprintf("blinded[%d]", i), err)
			}
			sigs[i] = otp.EncodeBlinded(sig)
			return nil
		})
	}
	return sigs, g.Wait()
}

// maxClients bounds the rate limiter's memory. When that many clients are
// active at once, new ones are refused until some go idle.
const maxClients = 100_000

// limiter is a token bucket per client address. Certification is open to
// anyone, so this is what keeps one client from taking all the bank's
// signing time.
type limiter struct {
	rate  rate.Limit
	burst int
	// idle is how long a bucket takes to refill: a client idle that long
	// is indistinguishable from a new one, so its bucket can go.
	idle time.Duration

	mu        sync.Mutex
	clients   map[netip.Prefix]*client
	lastSweep time.Time
}

type client struct {
	bucket *rate.Limiter
	seen   time.Time
}

func newLimiter(r rate.Limit, burst int) *limiter {
	return &limiter{
		rate:    r,
		burst:   burst,
		idle:    time.Duration(float64(burst)/float64(r)*float64(time.Second)) + time.Second,
		clients: make(map[netip.Prefix]*client),
	}
}

// clientKey is the address a request is limited under: its IP, or its /64
// for IPv6, since one IPv6 user commonly holds a whole /64.
func clientKey(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{} // unparseable addresses share one bucket
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// allow takes a token from the client's bucket.
func (l *limiter) allow(remoteAddr string, now time.Time) bool {
	key := clientKey(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c == nil {
		if len(l.clients) >= maxClients {
			l.sweep(now)
			if len(l.clients) >= maxClients {
				return false
			}
		}
		c = &client{bucket: rate.NewLimiter(l.rate, l.burst)}
		l.clients[key] = c
	}
	c.seen = now
	return c.bucket.AllowN(now, 1)
}

// sweep forgets idle clients, at most once a second so that a full table
// does not cost a scan per request.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, c := range l.clients {
		if now.Sub(c.seen) > l.idle {
			delete(l.clients, k)
		}
	}
}
