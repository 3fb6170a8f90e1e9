package bank

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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
// wallet a coin was paid to. Each signature takes one of the bank's
// certification slots, so that however many requests certify at once,
// they use at most ExchangeKeyWorkers CPUs and withdrawals and deposits
// keep the rest; a request whose client goes away while it waits for a
// slot stops.
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cap(b.certifySlots))
	for i, m := range blinded {
		g.Go(func() error {
			select {
			case b.certifySlots <- struct{}{}:
				defer func() { <-b.certifySlots }()
			case <-gctx.Done():
				return errCertifyBusy
			}
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

var errCertifyBusy = api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable,
	"request ended while waiting for the bank's certification workers; retry shortly")

// maxClients bounds the rate limiter's memory. When that many clients are
// active at once, new ones are refused until some go idle.
const maxClients = 100_000

// limiter is a token bucket per client address, in units of work (for
// certification, signatures). Certification is open to anyone, so this is
// what keeps one client from taking all the bank's signing time.
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

// reserve takes n tokens from the client's bucket, if it has them now.
// It returns the reservation, to be cancelled if the work is refused
// elsewhere, or nil and how long until the bucket could give n (0 when the
// client table is full).
func (l *limiter) reserve(remoteAddr string, now time.Time, n int) (*rate.Reservation, time.Duration) {
	key := clientKey(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c == nil {
		if len(l.clients) >= maxClients {
			l.sweep(now)
			if len(l.clients) >= maxClients {
				return nil, 0
			}
		}
		c = &client{bucket: rate.NewLimiter(l.rate, l.burst)}
		l.clients[key] = c
	}
	c.seen = now
	return reserveNow(c.bucket, now, n)
}

// reserveNow takes n tokens from lim if it has them at now; otherwise it
// takes none and says how long until it could.
func reserveNow(lim *rate.Limiter, now time.Time, n int) (*rate.Reservation, time.Duration) {
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return nil, rate.InfDuration
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return r, 0
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

// chargeCertification takes n signatures from the certification budgets
// of the request's client address and of the whole bank, or neither, and
// refuses with 429, naming the budget spent and when to retry.
func (b *Bank) chargeCertification(w http.ResponseWriter, r *http.Request, n int) error {
	if n == 0 {
		return nil
	}
	now := b.now()
	own, wait := b.limiter.reserve(r.RemoteAddr, now, n)
	if own == nil {
		if wait == 0 {
			return refuseForNow(w, time.Second, "the bank certifies for too many addresses at once")
		}
		return refuseForNow(w, wait, "the certification budget of your address is spent (%g signatures a second, at most %d at once); %d more asked",
			float64(b.cfg.ExchangeKeyRate), b.cfg.ExchangeKeyBurst, n)
	}
	if all, wait := reserveNow(b.certifyAll, now, n); all == nil {
		own.CancelAt(now)
		return refuseForNow(w, wait, "the bank's certification budget for all clients is spent (%g signatures a second, at most %d at once); %d more asked",
			float64(b.cfg.ExchangeKeyGlobalRate), b.cfg.ExchangeKeyGlobalBurst, n)
	}
	return nil
}

// refuseForNow refuses a request over a budget with 429 and a
// Retry-After of wait (1 s to an hour).
func refuseForNow(w http.ResponseWriter, wait time.Duration, format string, args ...any) error {
	secs := max(1, int64(math.Ceil(min(wait, time.Hour).Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return api.Errorf(http.StatusTooManyRequests, api.CodeRateLimited, format+"; retry in %d s", append(args, secs)...)
}
