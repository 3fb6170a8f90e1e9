package discover

import (
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Erin's shop", true},
		{"Café Zoë", true},
		{strings.Repeat("a", MaxName), true},
		{"", false},
		{strings.Repeat("a", MaxName+1), false},
		{"shop\x1b[2J", false},
		{"shop\nline", false},
		{"shop\u202Epoh", false},
		{"shop\u2028", false},
		{"bad\xffutf8", false},
	} {
		err := CheckName(tc.name)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrName) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func peer(name, addr string, port uint16) Peer {
	return Peer{Name: name, Addr: netip.MustParseAddr(addr), Port: port}
}

func TestFindPeers(t *testing.T) {
	shop := peer("Erin's shop", "192.0.2.10", 7070)
	other := peer("Bob", "192.0.2.11", 7070)
	impostor := peer("Erin's shop", "192.0.2.66", 7070)
	for _, tc := range []struct {
		desc  string
		peers []Peer
		want  Peer
		err   error
	}{
		{"one", []Peer{other, shop}, shop, nil},
		{"none", []Peer{other}, Peer{}, ErrNotFound},
		{"empty", nil, Peer{}, ErrNotFound},
		{"two with the name", []Peer{shop, other, impostor}, Peer{}, ErrAmbiguous},
		{"case differs", []Peer{peer("erin's shop", "192.0.2.10", 7070)}, Peer{}, ErrNotFound},
	} {
		got, err := Find(tc.peers, "Erin's shop")
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%s: Find = %v, %v; want %v, %v", tc.desc, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "Erin's shop") {
			t.Errorf("%s: error %q does not name what was looked for", tc.desc, err)
		}
	}
}

func TestPeerHostPort(t *testing.T) {
	for _, tc := range []struct {
		p    Peer
		want string
	}{
		{peer("a", "192.0.2.10", 7070), "192.0.2.10:7070"},
		{peer("a", "2001:db8::1", 7070), "[2001:db8::1]:7070"},
		{Peer{Name: "a", Addr: netip.MustParseAddr("fe80::1").WithZone("eth0"), Port: 1}, "[fe80::1%eth0]:1"},
	} {
		if got := tc.p.HostPort(); got != tc.want {
			t.Errorf("HostPort = %q, want %q", got, tc.want)
		}
	}
}

func txtFor(name string) []string {
	return []string{txtVersion, txtName + base64.RawURLEncoding.EncodeToString([]byte(name))}
}

func TestFromEntry(t *testing.T) {
	v4 := net.IPv4(192, 0, 2, 10)
	for _, tc := range []struct {
		desc string
		txt  []string
		v4   net.IP
		v6   *net.IPAddr
		port int
		want Peer
	}{
		{"ok", txtFor("Erin's shop"), v4, nil, 7070, peer("Erin's shop", "192.0.2.10", 7070)},
		{"v6 with zone", txtFor("a"), nil, &net.IPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, 7070,
			Peer{Name: "a", Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 7070}},
		{"no TXT", nil, v4, nil, 7070, Peer{}},
		{"other version", []string{"v=2", txtFor("a")[1]}, v4, nil, 7070, Peer{}},
		{"two names", append(txtFor("a"), txtFor("b")[1]), v4, nil, 7070, Peer{}},
		{"name not base64url", []string{txtVersion, txtName + "Erin's shop"}, v4, nil, 7070, Peer{}},
		{"padded base64", []string{txtVersion, txtName + "YQ=="}, v4, nil, 7070, Peer{}},
		{"name too long", txtFor(strings.Repeat("a", MaxName+1)), v4, nil, 7070, Peer{}},
		{"escape sequence", txtFor("shop\x1b]0;pwned\x07"), v4, nil, 7070, Peer{}},
		{"empty name", txtFor(""), v4, nil, 7070, Peer{}},
		{"port 0", txtFor("a"), v4, nil, 0, Peer{}},
		{"port too large", txtFor("a"), v4, nil, 70000, Peer{}},
		{"no address", txtFor("a"), nil, nil, 7070, Peer{}},
		{"unspecified address", txtFor("a"), net.IPv4zero, nil, 7070, Peer{}},
		{"multicast address", txtFor("a"), net.IPv4(224, 0, 0, 251), nil, 7070, Peer{}},
	} {
		got, err := fromEntry(tc.txt, tc.v4, tc.v6, tc.port)
		wantErr := tc.want == Peer{}
		if got != tc.want || wantErr != (err != nil) || err != nil && !errors.Is(err, ErrAnswer) {
			t.Errorf("%s: fromEntry = %v, %v; want %v", tc.desc, got, err, tc.want)
		}
	}
}

func FuzzFromEntry(f *testing.F) {
	f.Add("v=1", txtFor("Erin's shop")[1], []byte{192, 0, 2, 10}, 7070)
	f.Add("v=1", "name=", []byte{}, 0)
	f.Fuzz(func(t *testing.T, a, b string, ip []byte, port int) {
		p, err := fromEntry([]string{a, b}, net.IP(ip), nil, port)
		if err != nil {
			return
		}
		if CheckName(p.Name) != nil || p.Port == 0 || !p.Addr.IsValid() {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// TestAnnounceLoopback announces on the loopback interface only, so no
// packet leaves the machine. Names carry the test's own tag: other test
// processes may announce on the same interface at the same time.
func TestAnnounceLoopback(t *testing.T) {
	lo := loopback(t)
	tag := "test " + t.Name() + " " + time.Now().Format("150405.000000")
	announce := func(name string, port int) {
		c, err := Announce(name, []net.IP{net.IPv4(127, 0, 0, 1)}, port, Config{Interface: lo})
		if err != nil {
			t.Fatalf("Announce(%q): %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	shop, twin := "shop "+tag, "twin "+tag
	announce(shop, 7070)
	announce(twin, 7071)
	announce(twin, 7072)

	ctx := t.Context()
	cfg := Config{Interface: lo, Timeout: time.Second}
	got, err := Lookup(ctx, shop, cfg)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", shop, err)
	}
	if want := peer(shop, "127.0.0.1", 7070); got != want {
		t.Fatalf("Lookup = %+v, want %+v", got, want)
	}
	if _, err := Lookup(ctx, twin, cfg); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Lookup of a name two receivers announce = %v, want ErrAmbiguous", err)
	}
	if _, err := Lookup(ctx, "nobody "+tag, cfg); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of an unannounced name = %v, want ErrNotFound", err)
	}
	peers, err := Browse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mine []Peer
	for _, p := range peers {
		if strings.HasSuffix(p.Name, tag) {
			mine = append(mine, p)
		}
	}
	want := []Peer{peer(shop, "127.0.0.1", 7070), peer(twin, "127.0.0.1", 7071), peer(twin, "127.0.0.1", 7072)}
	if len(mine) != len(want) || mine[0] != want[0] || mine[1] != want[1] || mine[2] != want[2] {
		t.Errorf("Browse = %+v, want %+v", mine, want)
	}
}

func TestAnnounceRefusesName(t *testing.T) {
	if _, err := Announce("shop\x1b[2J", []net.IP{net.IPv4(127, 0, 0, 1)}, 7070, Config{Interface: loopback(t)}); !errors.Is(err, ErrName) {
		t.Fatalf("Announce with an escape sequence = %v, want ErrName", err)
	}
}

// loopback is the machine's loopback interface; the mDNS tests need it to
// carry multicast, which it does on Linux.
func loopback(t *testing.T) *net.Interface {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			return &i
		}
	}
	t.Skip("no loopback interface")
	return nil
}
