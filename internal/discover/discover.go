// Package discover finds payees on the local network by mDNS / DNS-SD
// (RFC 6762, RFC 6763) under the service type _otpcash._tcp.
//
// A name found here is a convenience, not an identity: anyone on the
// network can announce any name, and the answers are neither signed nor
// private. What protects a payment is the short authentication string both
// people compare once the session is up; a payer who reached an impostor
// sees a string that does not match the payee's screen.
//
// Every announcement carries a random DNS instance label and the chosen
// name in a TXT record, base64url-encoded. The random label keeps two
// receivers that chose one name apart, so that a payer sees both and
// refuses to pick (the mDNS client merges answers that share an instance
// label); the encoding keeps any printable name, "Café Zoë" included,
// clear of DNS escaping.
//
// What arrives is bounded: at most MaxPeers answers are read per query,
// and a name must be valid UTF-8, at most MaxName bytes, and free of
// characters that act on a terminal rather than show.
package discover

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/otpcash/otpcash/internal/showable"
)

const (
	// Service is the DNS-SD service type receivers announce.
	Service = "_otpcash._tcp"
	// MaxName bounds a name in bytes, as a DNS label is bounded.
	MaxName = 63
	// MaxPeers bounds the answers read from one query.
	MaxPeers = 64
	// DefaultTimeout is how long a query listens for answers.
	DefaultTimeout = 3 * time.Second

	txtVersion = "v=1"
	txtName    = "name="
)

var (
	// ErrName reports a name that is empty, too long or holds a character
	// that is not allowed.
	ErrName = errors.New("discover: invalid name")
	// ErrNotFound reports that no receiver answered with the name.
	ErrNotFound = errors.New("discover: no receiver with that name")
	// ErrAmbiguous reports two receivers announcing the same name.
	ErrAmbiguous = errors.New("discover: two receivers announce that name")
	// ErrAnswer reports an answer that is not a well-formed announcement.
	ErrAnswer = errors.New("discover: malformed announcement")
)

// Peer is a receiver that answered a query.
type Peer struct {
	Name string
	Addr netip.Addr
	Port uint16
}

// HostPort is the address to dial, host:port.
func (p Peer) HostPort() string {
	return netip.AddrPortFrom(p.Addr, p.Port).String()
}

// CheckName refuses a name that could not be announced or would act on
// the screen it is shown on: empty, over MaxName bytes, invalid UTF-8, or
// holding a control, bidirectional-control or line-separator character.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrName)
	}
	if len(name) > MaxName {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrName, len(name), MaxName)
	}
	if err := showable.Check(name); err != nil {
		return fmt.Errorf("%w: %v", ErrName, err)
	}
	return nil
}

// Config says where announcements and queries go. The zero value uses
// every multicast interface.
type Config struct {
	// Interface, when set, keeps the traffic on one interface.
	Interface *net.Interface
	// Timeout is how long a query listens; DefaultTimeout when zero.
	Timeout time.Duration
}

// Announce answers queries for name at the addresses ips and port until
// the returned Closer is closed. With no ips it announces the unicast
// addresses of the machine's interfaces that are up.
func Announce(name string, ips []net.IP, port int, cfg Config) (io.Closer, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("discover: announce %q: port %d out of range", name, port)
	}
	if len(ips) == 0 {
		var err error
		if ips, err = localIPs(); err != nil {
			return nil, fmt.Errorf("discover: announce %q: %w", name, err)
		}
	}
	var id [8]byte
	rand.Read(id[:])
	label := "otpcash-" + hex.EncodeToString(id[:])
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = label
	}
	host = strings.TrimSuffix(host, ".") + ".local."
	txt := []string{txtVersion, txtName + base64.RawURLEncoding.EncodeToString([]byte(name))}
	zone, err := mdns.NewMDNSService(label, Service, "", host, port, ips, txt)
	if err != nil {
		return nil, fmt.Errorf("discover: announce %q: %w", name, err)
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: cfg.Interface, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("discover: announce %q: %w", name, err)
	}
	return closer(srv.Shutdown), nil
}

type closer func() error

func (c closer) Close() error { return c() }

// quiet drops the mDNS library's log lines: they report packets from
// other machines, which are not the user's to act on.
var quiet = log.New(io.Discard, "", 0)

// localIPs lists the unicast addresses of the interfaces that are up.
func localIPs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		// Global unicast includes private ranges; loopback would send a
		// payer on another machine to itself, link-local needs a zone.
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no local address to announce")
	}
	return ips, nil
}

// Browse lists the receivers that answer within the timeout, sorted by
// name then address. Malformed answers are left out.
func Browse(ctx context.Context, cfg Config) ([]Peer, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// The library drops answers once the channel is full, which is the cap;
	// it may still update an entry it has sent until the query returns, so
	// entries are read only after it has.
	ch := make(chan *mdns.ServiceEntry, MaxPeers)
	err := mdns.QueryContext(ctx, &mdns.QueryParam{
		Service:     Service,
		Timeout:     timeout,
		Interface:   cfg.Interface,
		Entries:     ch,
		DisableIPv6: cfg.Interface != nil && cfg.Interface.Flags&net.FlagLoopback != 0,
		Logger:      quiet,
	})
	close(ch)
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("discover: query %s: %w", Service, err)
	}
	var peers []Peer
	for e := range ch {
		if p, err := fromEntry(e.InfoFields, e.AddrV4, e.AddrV6IPAddr, e.Port); err == nil {
			peers = append(peers, p)
		}
	}
	slices.SortFunc(peers, func(a, b Peer) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.HostPort(), b.HostPort())
	})
	return peers, ctx.Err()
}

// Lookup finds the one receiver announcing name.
func Lookup(ctx context.Context, name string, cfg Config) (Peer, error) {
	if err := CheckName(name); err != nil {
		return Peer{}, err
	}
	peers, err := Browse(ctx, cfg)
	if err != nil {
		return Peer{}, err
	}
	return Find(peers, name)
}

// Find picks the peer announcing name, refusing when none or more than
// one does: of two receivers with one name at least one is not who the
// payer means, and the payer cannot tell which.
func Find(peers []Peer, name string) (Peer, error) {
	var found []Peer
	for _, p := range peers {
		if p.Name == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return Peer{}, fmt.Errorf("%w: %q (%s)", ErrNotFound, name, Service)
	case 1:
		return found[0], nil
	default:
		return Peer{}, fmt.Errorf("%w: %q at %s and %s", ErrAmbiguous, name, found[0].HostPort(), found[1].HostPort())
	}
}

// fromEntry checks one answer: a TXT record of this version with exactly
// one well-formed name, an address, a port. A TXT string is at most 255
// bytes on the wire, which bounds the decoding.
func fromEntry(txt []string, v4 net.IP, v6 *net.IPAddr, port int) (Peer, error) {
	if len(txt) != 2 || txt[0] != txtVersion || !strings.HasPrefix(txt[1], txtName) {
		return Peer{}, fmt.Errorf("%w: TXT %q", ErrAnswer, txt)
	}
	enc := txt[1][len(txtName):]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: name: %v", ErrAnswer, err)
	}
	name := string(raw)
	if err := CheckName(name); err != nil {
		return Peer{}, fmt.Errorf("%w: %w", ErrAnswer, err)
	}
	if port <= 0 || port > 65535 {
		return Peer{}, fmt.Errorf("%w: %q: port %d", ErrAnswer, name, port)
	}
	// IPv4 first: a link-local IPv6 address is dialable only with the zone
	// the library borrows from the packet.
	ip, zone := v4, ""
	if ip == nil && v6 != nil {
		ip, zone = v6.IP, v6.Zone
	}
	addr, ok := netip.AddrFromSlice(ip)
	addr = addr.Unmap()
	if !ok || addr.IsUnspecified() || addr.IsMulticast() {
		return Peer{}, fmt.Errorf("%w: %q: address %v", ErrAnswer, name, ip)
	}
	if addr.Is6() && zone != "" {
		addr = addr.WithZone(zone)
	}
	return Peer{Name: name, Addr: addr, Port: uint16(port)}, nil
}
