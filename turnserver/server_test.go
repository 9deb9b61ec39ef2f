package turnserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// newServer starts a relay on loopback (UDP and TCP) whose only peer is
// media, a UDP socket standing for the SFU.
func newServer(t *testing.T, cfg Config) (*Server, *net.UDPConn) {
	t.Helper()
	media, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = media.Close() })
	cfg.UDPAddr, cfg.TCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RelayIP = net.IPv4(127, 0, 0, 1)
	if cfg.Credentials.Secret == nil {
		cfg.Credentials = Credentials{Secret: []byte("test secret")}
	}
	cfg.Peers.Media = append(cfg.Peers.Media, media.LocalAddr().(*net.UDPAddr).AddrPort())
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, media
}

// client is a TURN client over UDP with the given credentials.
func client(t *testing.T, s *Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: s.UDPAddr().String(), Username: user, Password: pass,
		Realm: "bedside", Conn: conn, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestServerChecksCredentials(t *testing.T) {
	creds := Credentials{Secret: []byte("test secret"), TTL: time.Minute}
	now := time.Now()
	clock := func() time.Time { return now }
	s, _ := newServer(t, Config{Credentials: creds, Now: clock})
	good, pass, err := creds.Mint("v1-u2", now)
	if err != nil {
		t.Fatal(err)
	}
	expired, expiredPass, _ := creds.Mint("v1-u2", now.Add(-2*time.Minute))
	for _, tc := range []struct {
		name, user, pass string
		ok               bool
	}{
		{"valid", good, pass, true},
		{"wrong password", good, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", false},
		{"expired", expired, expiredPass, false},
		{"not TURN REST", "alice", "secret", false},
		{"another secret", good, Credentials{Secret: []byte("other")}.Password(good), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay, err := client(t, s, tc.user, tc.pass).Allocate()
			if tc.ok != (err == nil) {
				t.Fatalf("Allocate: %v, want ok=%v", err, tc.ok)
			}
			if relay != nil {
				_ = relay.Close()
			}
		})
	}
}

func TestRelayReachesOnlyTheMediaSocket(t *testing.T) {
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s, media := newServer(t, Config{})
	user, pass := creds(t)
	relay, err := client(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()

	// Another port on the same, permitted, address: the relay drops it.
	if _, err := relay.WriteTo([]byte("to another port"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	// An address that is not the SFU's: no permission is granted.
	if _, err := relay.WriteTo([]byte("elsewhere"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil {
		t.Error("a permission to 127.0.0.2 was granted")
	}
	if _, err := relay.WriteTo([]byte("to the sfu"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := media.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "to the sfu" {
		t.Fatalf("media socket read %q, %v", buf[:n], err)
	}
	// The relay handles the client's datagrams in order, and loopback
	// delivers at once: had the first gone out, it would be waiting.
	_ = other.SetReadDeadline(time.Now())
	if n, _, err := other.ReadFromUDP(buf); err == nil {
		t.Fatalf("the relay sent %q to a port that is not the SFU's", buf[:n])
	}
	// The SFU's answer comes back through the relay.
	if _, err := media.WriteToUDP([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := relay.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "answer" || src.String() != media.LocalAddr().String() {
		t.Fatalf("relay read %q from %v, %v", buf[:n], src, err)
	}
}

func TestRelayRefusesTCPAndExtraAllocations(t *testing.T) {
	s, _ := newServer(t, Config{MaxAllocations: 1})
	user, pass := creds(t)
	c := client(t, s, user, pass)
	if _, err := c.AllocateTCP(); err == nil {
		t.Error("a TCP relay was allocated")
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if r2, err := client(t, s, user, pass).Allocate(); err == nil {
		r2.Close()
		t.Error("a second relay beyond the quota was allocated")
	}
}

func TestPeersRoute(t *testing.T) {
	ap := netip.MustParseAddrPort
	p := Peers{
		Media:   []netip.AddrPort{ap("10.0.0.5:10000"), ap("[fd00::5]:10000")},
		Aliases: map[netip.Addr]netip.Addr{netip.MustParseAddr("203.0.113.7"): netip.MustParseAddr("10.0.0.5")},
		Extra:   []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")},
	}
	for _, tc := range []struct {
		dst, want string
		ok        bool
	}{
		{"10.0.0.5:10000", "10.0.0.5:10000", true},
		{"203.0.113.7:10000", "10.0.0.5:10000", true},
		{"[::ffff:10.0.0.5]:10000", "10.0.0.5:10000", true},
		{"[fd00::5]:10000", "[fd00::5]:10000", true},
		{"192.168.50.9:4000", "192.168.50.9:4000", true},
		{"10.0.0.5:5432", "", false},
		{"203.0.113.7:22", "", false},
		{"127.0.0.1:10000", "", false},
		{"10.0.0.6:10000", "", false},
	} {
		got, ok := p.route(ap(tc.dst))
		if ok != tc.ok || (ok && got != ap(tc.want)) {
			t.Errorf("route(%s) = %s, %v; want %s, %v", tc.dst, got, ok, tc.want, tc.ok)
		}
	}
	for ip, want := range map[string]bool{"10.0.0.5": true, "203.0.113.7": true, "192.168.50.1": true, "10.0.0.6": false, "8.8.8.8": false} {
		if got := p.allowIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("allowIP(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no address":  {Credentials: Credentials{Secret: []byte("s")}, RelayIP: net.IPv4(127, 0, 0, 1)},
		"no secret":   {UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1)},
		"no relay IP": {UDPAddr: "127.0.0.1:0", Credentials: Credentials{Secret: []byte("s")}},
		"bad address": {UDPAddr: "127.0.0.1:99999", Credentials: Credentials{Secret: []byte("s")}, RelayIP: net.IPv4(127, 0, 0, 1)},
	} {
		if s, err := New(cfg); err == nil {
			_ = s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// creds mints credentials under the test secret.
func creds(t *testing.T) (user, pass string) {
	t.Helper()
	user, pass, err := Credentials{Secret: []byte("test secret")}.Mint("v1-u2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return user, pass
}
