package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/turnserver"
)

// Default media ports: an operator opens UDP 10000 (all media) and TCP
// 10000 (the fallback for networks that block UDP), and nothing else,
// unless the TURN relay is turned on.
const (
	defaultICEUDPPort = "10000"
	defaultICETCPPort = "10000"
)

// iceSettings is what serve reads about media networking.
type iceSettings struct {
	loopback   bool
	udp        string // "host:port" or ":port"
	tcp        string // "" when off
	natIP      string
	servers    string
	turn       string // "" when off
	turnHost   string
	turnSecret string
	turnPeers  []netip.Prefix
}

// iceFlags declares the media networking flags on fs; the returned
// function checks them after parsing.
func iceFlags(fs *flag.FlagSet, getenv func(string) string, c *config) func() error {
	s := &c.ice
	udp := envOr(getenv, "BEDSIDE_ICE_UDP_PORT", defaultICEUDPPort)
	tcp := envOr(getenv, "BEDSIDE_ICE_TCP_PORT", defaultICETCPPort)
	turn := envOr(getenv, "BEDSIDE_TURN_PORT", "off")
	retired := getenv("BEDSIDE_ICE_UDP_PORTS")
	peers := getenv("BEDSIDE_TURN_PEERS")
	fs.Func("ice-udp-port", "the one UDP port all media uses, PORT or IP:PORT; 0 picks a free one (BEDSIDE_ICE_UDP_PORT, default "+defaultICEUDPPort+")", func(v string) error {
		udp = v
		return nil
	})
	fs.Func("ice-tcp-port", "the one TCP port for media from networks that block UDP, PORT or IP:PORT, or off (BEDSIDE_ICE_TCP_PORT, default "+defaultICETCPPort+")", func(v string) error {
		tcp = v
		return nil
	})
	fs.Func("ice-udp-ports", "retired: media shares one UDP port, see --ice-udp-port", func(v string) error {
		retired = v
		return nil
	})
	fs.StringVar(&s.natIP, "ice-nat-ip", getenv("BEDSIDE_ICE_NAT_IP"), "public IP to advertise, UDP and TCP, when behind a 1:1 NAT (BEDSIDE_ICE_NAT_IP)")
	fs.StringVar(&s.servers, "ice-servers", getenv("BEDSIDE_ICE_SERVERS"), "comma-separated STUN/TURN URLs given to browsers (BEDSIDE_ICE_SERVERS): stun:host:port, turn:user:pass@host:port, or turn:host:port for per-visit credentials minted with --turn-secret")
	fs.BoolVar(&s.loopback, "ice-loopback", getenv("BEDSIDE_ICE_LOOPBACK") == "1", "offer loopback ICE candidates, for tests on one machine (BEDSIDE_ICE_LOOPBACK=1)")
	fs.Func("turn-port", "run the TURN relay on this UDP and TCP port, PORT or IP:PORT, or off (BEDSIDE_TURN_PORT, default off)", func(v string) error {
		turn = v
		return nil
	})
	fs.StringVar(&s.turnHost, "turn-host", getenv("BEDSIDE_TURN_HOST"), "host name or address browsers reach the TURN relay by (BEDSIDE_TURN_HOST); default: --ice-nat-ip, else the host of the page")
	fs.StringVar(&s.turnSecret, "turn-secret", getenv("BEDSIDE_TURN_SECRET"), "TURN REST shared secret of the relay and of --ice-servers TURN servers without credentials, e.g. coturn's static-auth-secret (BEDSIDE_TURN_SECRET); default: derived from the server key")
	fs.Func("turn-peers", "comma-separated networks the TURN relay may reach besides this server's media port, e.g. 10.0.0.0/8 for other media nodes (BEDSIDE_TURN_PEERS); default none", func(v string) error {
		peers = v
		return nil
	})
	return func() error {
		if retired != "" {
			return fmt.Errorf("serve: --ice-udp-ports (BEDSIDE_ICE_UDP_PORTS) is retired: all media now shares one UDP port; set --ice-udp-port (default %s) and open that one port", defaultICEUDPPort)
		}
		var err error
		if s.udp, err = portSetting("ice-udp-port", udp, false); err != nil {
			return err
		}
		if s.tcp, err = portSetting("ice-tcp-port", tcp, true); err != nil {
			return err
		}
		if s.turn, err = portSetting("turn-port", turn, true); err != nil {
			return err
		}
		if s.natIP != "" && net.ParseIP(s.natIP) == nil {
			return fmt.Errorf("serve: --ice-nat-ip %q is not an IP address", s.natIP)
		}
		if s.turnSecret != "" && len(s.turnSecret) < 16 {
			return fmt.Errorf("serve: --turn-secret must be at least 16 characters; make one with: openssl rand -hex 32")
		}
		if s.turnPeers, err = parsePrefixes("turn-peers", peers); err != nil {
			return err
		}
		return checkPortClashes(c)
	}
}

// portSetting reads PORT, IP:PORT or (if offOK) "off"/"0"... into a
// listen address; "" means off.
func portSetting(name, v string, offOK bool) (string, error) {
	v = strings.TrimSpace(v)
	if offOK && (v == "off" || v == "") {
		return "", nil
	}
	addr := v
	if !strings.Contains(v, ":") {
		addr = ":" + v
	}
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 {
		want := "a port (0 to 65535) or IP:PORT"
		if offOK {
			want += ", or off"
		}
		return "", fmt.Errorf("serve: --%s %q: want %s", name, v, want)
	}
	if host != "" {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			return "", fmt.Errorf("serve: --%s %q: %q is not an IP address of this machine (leave it out to use all of them)", name, v, host)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// parsePrefixes reads comma-separated addresses or CIDR prefixes.
func parsePrefixes(name, v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		if a, err := netip.ParseAddr(part); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("serve: --%s: %q is neither an address nor a prefix such as 10.0.0.0/8", name, part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// listener is one port the server listens on, named by its flag.
type listener struct {
	flag, addr string
}

// checkPortClashes refuses two listeners of one protocol on the same port
// and address, which would fail at start with a less helpful message.
func checkPortClashes(c *config) error {
	tcp := []listener{{"addr", c.addr}}
	if len(c.https.acmeDomains) > 0 {
		tcp = append(tcp, listener{"acme-http-addr", c.https.acmeHTTPAddr})
	}
	udp := []listener{{"ice-udp-port", c.ice.udp}}
	if c.ice.tcp != "" {
		tcp = append(tcp, listener{"ice-tcp-port", c.ice.tcp})
	}
	if c.ice.turn != "" {
		tcp = append(tcp, listener{"turn-port", c.ice.turn})
		udp = append(udp, listener{"turn-port", c.ice.turn})
	}
	for proto, ls := range map[string][]listener{"TCP": tcp, "UDP": udp} {
		for i, a := range ls {
			for _, b := range ls[i+1:] {
				if clash(a.addr, b.addr) {
					return fmt.Errorf("serve: --%s %s and --%s %s would share %s port %s: give each its own", a.flag, a.addr, b.flag, b.addr, proto, portOf(a.addr))
				}
			}
		}
	}
	return nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// clash reports whether two listen addresses would take the same port: the
// same non-zero port on the same address, or where either is every address.
func clash(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if n, err := strconv.Atoi(pa); err != nil || n == 0 {
		return false
	}
	wild := func(h string) bool { return h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified() }
	return wild(ha) || wild(hb) || net.ParseIP(ha).Equal(net.ParseIP(hb)) || ha == hb
}

// mediaConfig turns the settings into the SFU's configuration; secret is
// the server key the TURN secret is derived from when none is set.
func mediaConfig(s iceSettings, secret []byte) (media.Config, error) {
	mc := media.Config{AllowLoopback: s.loopback, UDPAddr: s.udp, TCPAddr: s.tcp}
	if s.natIP != "" {
		mc.NAT1To1IPs = []string{s.natIP}
	}
	for _, raw := range strings.Split(s.servers, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		srv, err := parseICEServer(raw)
		if err != nil {
			return mc, err
		}
		mc.ICEServers = append(mc.ICEServers, srv)
	}
	mc.TURNSecret = []byte(s.turnSecret)
	if s.turnSecret == "" {
		mc.TURNSecret = []byte(turnserver.DeriveSecret(secret))
	}
	if s.turn != "" {
		mc.TURN = media.TURNConfig{UDPAddr: s.turn, TCPAddr: s.turn, Host: s.turnHost, ExtraPeers: s.turnPeers}
		if mc.TURN.Host == "" {
			mc.TURN.Host = s.natIP
		}
	}
	return mc, nil
}

// parseICEServer reads stun:host:port, turn:user:pass@host:port or
// turn:host:port (credentials minted per visit).
func parseICEServer(raw string) (webrtc.ICEServer, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || (scheme != "stun" && scheme != "turn" && scheme != "turns") || rest == "" {
		return webrtc.ICEServer{}, fmt.Errorf("ice server %q: want stun:host:port, turn:user:pass@host:port or turn:host:port", raw)
	}
	if cred, host, ok := strings.Cut(rest, "@"); ok {
		user, pass, _ := strings.Cut(cred, ":")
		if scheme == "stun" || user == "" || pass == "" || host == "" {
			return webrtc.ICEServer{}, fmt.Errorf("ice server %q: credentials go with turn: URLs as turn:user:pass@host:port", redactICE(raw))
		}
		return webrtc.ICEServer{URLs: []string{scheme + ":" + host}, Username: user, Credential: pass}, nil
	}
	return webrtc.ICEServer{URLs: []string{raw}}, nil
}

// redactICE hides a password in an ICE server URL.
func redactICE(raw string) string {
	scheme, rest, _ := strings.Cut(raw, ":")
	if cred, host, ok := strings.Cut(rest, "@"); ok {
		user, _, _ := strings.Cut(cred, ":")
		return scheme + ":" + user + ":***@" + host
	}
	return raw
}

// logMediaPorts says where media is received, so an operator can check
// the firewall against it.
func logMediaPorts(log *slog.Logger, sfu *media.SFU) {
	var udp []string
	for _, a := range sfu.UDPAddrs() {
		udp = append(udp, a.String())
	}
	args := []any{"ice_udp", strings.Join(udp, ",")}
	if a := sfu.TCPAddr(); a != nil {
		args = append(args, "ice_tcp", a.String())
	}
	if u, t := sfu.TURNAddrs(); u != nil || t != nil {
		args = append(args, "turn_udp", fmt.Sprint(u), "turn_tcp", fmt.Sprint(t))
	}
	log.Info("media listening", args...)
}
