package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/turnserver"
)

// Config sets up the SFU's networking. The zero value serves ICE over UDP
// on one free port per address of the machine, without ICE-TCP or TURN.
type Config struct {
	// Net is the network the SFU's sockets live on; nil means the host's
	// own. Tests pass a pion/transport vnet.Net to run calls over a
	// virtual network with NATs, loss, delay or blocked traffic (a vnet
	// has no TCP: leave TCPAddr and TURN's TCPAddr empty there).
	Net transport.Net
	// AllowLoopback offers loopback ICE candidates (tests on one machine).
	AllowLoopback bool
	// UDPAddr is where ICE over UDP arrives for every peer connection,
	// all sharing one socket per address: "host:port" binds that address
	// only, ":port" every address of the machine on the same port. Empty
	// means ":0", a free port per address chosen at start (tests).
	UDPAddr string
	// TCPAddr, if set, is where ICE over TCP arrives for every peer
	// connection on one listener ("host:port" or ":port"): passive TCP
	// candidates, for clients whose network blocks UDP. Empty offers none.
	TCPAddr string
	// NAT1To1IPs are public addresses advertised in host candidates, UDP
	// and TCP, instead of the host's own (a server behind 1:1 NAT).
	NAT1To1IPs []string
	// ICEServers are STUN/TURN servers handed to clients. A turn: or
	// turns: server without a Username gets fresh credentials for each
	// participant, minted with TURNSecret (an external TURN server
	// sharing that secret, such as coturn with use-auth-secret).
	ICEServers []webrtc.ICEServer
	// TURNSecret is the TURN REST shared secret of the embedded relay
	// and of external TURN servers without fixed credentials.
	TURNSecret []byte
	// TURNCredentialTTL is how long minted TURN credentials last;
	// turnserver.DefaultTTL if zero.
	TURNCredentialTTL time.Duration
	// TURN configures the embedded relay; off unless it has an address.
	TURN TURNConfig
}

// TURNConfig configures the embedded TURN relay.
type TURNConfig struct {
	// UDPAddr and TCPAddr are where clients reach the relay ("host:port"
	// or ":port"); the relay is off when both are empty.
	UDPAddr, TCPAddr string
	// Host is the name or address put in the turn: URLs handed to
	// clients; empty means the host each client reached the server by.
	Host string
	// ExtraPeers are networks the relay may reach besides the SFU's own
	// media sockets, on any port; none by default.
	ExtraPeers []netip.Prefix
}

func (t TURNConfig) enabled() bool { return t.UDPAddr != "" || t.TCPAddr != "" }

// maxDatagram is the largest datagram that reaches the SFU: Pion's ICE
// layer reads every UDP datagram and ICE-TCP frame into 8,192 bytes. Each
// read above it (Pion's demultiplexer and RTCP readers, the published
// tracks' read loops) takes that much, where Pion's default of 1,500 drops
// anything larger on arrival: a Pion client's TWCC feedback, which covers
// 100 ms in one packet (3 KB at 25,000 packets a second), or the packets
// of a sender set up for a larger MTU than 1,500.
const maxDatagram = 8192

// network is the SFU's sockets: the ICE UDP and TCP muxes shared by every
// peer connection, the TURN relay, and the settings built on them.
type network struct {
	cfg      Config
	settings webrtc.SettingEngine
	udp      ice.UDPMux
	tcp      ice.TCPMux
	tcpAddr  net.Addr
	turn     *turnserver.Server
	creds    turnserver.Credentials
}

// newNetwork opens the sockets cfg asks for.
func newNetwork(cfg Config, log *slog.Logger) (_ *network, err error) {
	if cfg.Net == nil {
		if cfg.Net, err = stdnet.NewNet(); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	n := &network{cfg: cfg, creds: turnserver.Credentials{Secret: cfg.TURNSecret, TTL: cfg.TURNCredentialTTL}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	se := &n.settings
	se.SetNet(cfg.Net)
	se.SetIncludeLoopbackCandidate(cfg.AllowLoopback)
	se.SetReceiveMTU(maxDatagram)
	// Pion's default mDNS mode stays: it resolves the .local candidates
	// browsers hide their addresses behind.
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}

	if n.udp, err = listenUDPMux(cfg); err != nil {
		return nil, err
	}
	se.SetICEUDPMux(n.udp)

	if cfg.TCPAddr != "" {
		ln, err := listenTCP(cfg.Net, cfg.TCPAddr)
		if err != nil {
			return nil, fmt.Errorf("ice tcp %s: %w", cfg.TCPAddr, err)
		}
		n.tcpAddr = ln.Addr()
		// A TCP client that cannot keep up loses packets beyond about a
		// second of video rather than falling ever further behind.
		n.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener: ln, Logger: quiet("ice-tcp"), ReadBufferSize: 64,
			WriteBufferSize: 256 << 10, FirstStunBindTimeout: 10 * time.Second,
		})
		se.SetICETCPMux(n.tcp)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)

	if len(cfg.NAT1To1IPs) > 0 {
		for _, ip := range cfg.NAT1To1IPs {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("nat 1:1 address %q is not an IP address", ip)
			}
		}
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.NAT1To1IPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			return nil, fmt.Errorf("nat 1:1 addresses: %w", err)
		}
	}

	if cfg.TURN.enabled() {
		if len(cfg.TURNSecret) == 0 {
			return nil, errors.New("turn relay: no shared secret")
		}
		if n.turn, err = n.startTURN(log); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// udpSocketBuffer is the kernel buffer asked for on each ICE UDP socket,
// each way. Every call on the node shares that one socket, so the
// default (about 200 KB, a few milliseconds of a busy node's packets)
// overflows, and drops packets, whenever its reader is held up that long;
// Linux grants at most net.core.rmem_max (wmem_max) of it.
const udpSocketBuffer = 4 << 20

// listenUDPMux opens the ICE UDP socket(s) of cfg.UDPAddr.
func listenUDPMux(cfg Config) (ice.UDPMux, error) {
	addr := cfg.UDPAddr
	if addr == "" {
		addr = ":0"
	}
	host, portText, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("ice udp address %q: want host:port or :port", addr)
	}
	if host == "" {
		opts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithNet(cfg.Net),
			ice.UDPMuxFromPortWithLogger(quiet("ice-udp")),
			ice.UDPMuxFromPortWithReadBufferSize(udpSocketBuffer),
			ice.UDPMuxFromPortWithWriteBufferSize(udpSocketBuffer),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
			// Link-local IPv6 addresses need a zone and are never reached
			// by a remote client.
			ice.UDPMuxFromPortWithIPFilter(func(ip net.IP) bool { return !ip.IsLinkLocalUnicast() }),
		}
		if cfg.AllowLoopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		mux, err := ice.NewMultiUDPMuxFromPort(port, opts...)
		if err != nil {
			return nil, fmt.Errorf("ice udp port %d: %w", port, err)
		}
		return mux, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("ice udp address %q: want an IP address of this machine, or :port for all of them", addr)
	}
	conn, err := cfg.Net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("ice udp %s: %w", addr, err)
	}
	// Best effort: a virtual network has no such buffers.
	_ = conn.SetReadBuffer(udpSocketBuffer)
	_ = conn.SetWriteBuffer(udpSocketBuffer)
	return ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Logger: quiet("ice-udp"), Net: cfg.Net}), nil
}

// listenTCP opens a TCP listener on n.
func listenTCP(n transport.Net, addr string) (net.Listener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	return n.ListenTCP("tcp", ta)
}

// mediaAddrs lists the ICE UDP sockets' addresses.
func (n *network) mediaAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range n.udp.GetListenAddresses() {
		if ua, ok := a.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	return out
}

// UDPAddrs returns the addresses ICE over UDP listens on.
func (s *SFU) UDPAddrs() []netip.AddrPort { return s.net.mediaAddrs() }

// TCPAddr returns the address ICE over TCP listens on, nil without ICE-TCP.
func (s *SFU) TCPAddr() net.Addr { return s.net.tcpAddr }

// TURNAddrs returns the embedded relay's UDP and TCP addresses; nil for
// one not served.
func (s *SFU) TURNAddrs() (udp, tcp net.Addr) {
	if s.net.turn == nil {
		return nil, nil
	}
	return s.net.turn.UDPAddr(), s.net.turn.TCPAddr()
}

// startTURN starts the embedded relay, whose only peers are the ICE UDP
// sockets (and, behind a 1:1 NAT, their public address).
func (n *network) startTURN(log *slog.Logger) (*turnserver.Server, error) {
	media := n.mediaAddrs()
	peers := turnserver.Peers{Media: media, Extra: n.cfg.TURN.ExtraPeers, Aliases: map[netip.Addr]netip.Addr{}}
	// The relay hands out an address of this machine the SFU listens on:
	// relayed media flows between the relay and the SFU only.
	var local netip.Addr
	for _, m := range media {
		a := m.Addr()
		if a.Is4() && (!local.IsValid() || local.IsLoopback() && !a.IsLoopback()) {
			local = a
		}
	}
	if !local.IsValid() {
		return nil, errors.New("turn relay: the SFU has no IPv4 media address to relay to")
	}
	for _, pub := range n.cfg.NAT1To1IPs {
		if a, err := netip.ParseAddr(pub); err == nil {
			peers.Aliases[a.Unmap()] = local
		}
	}
	srv, err := turnserver.New(turnserver.Config{
		Net: n.cfg.Net, UDPAddr: n.cfg.TURN.UDPAddr, TCPAddr: n.cfg.TURN.TCPAddr,
		Credentials: n.creds, Peers: peers, RelayIP: net.IP(local.AsSlice()),
		Log: log.With("component", "turn"),
	})
	if err != nil {
		return nil, err
	}
	return srv, nil
}

// ICEServers returns the STUN/TURN servers for one participant: the
// configured ones, with fresh TURN credentials for user where they are
// minted, and the embedded relay's on UDP and TCP, named by the relay's
// configured host or else host, the one the client reached the server by.
// user names who connects (letters, digits, . _ -); it is part of the TURN
// username, so relays can be told apart in logs.
func (s *SFU) ICEServers(user, host string) []webrtc.ICEServer {
	return s.net.iceServers(user, host, time.Now())
}

func (n *network) iceServers(user, host string, now time.Time) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(n.cfg.ICEServers)+1)
	var name, pass string
	mint := func() bool {
		if name == "" {
			var err error
			if name, pass, err = n.creds.Mint(user, now); err != nil {
				return false
			}
		}
		return true
	}
	for _, srv := range n.cfg.ICEServers {
		srv.URLs = slices.Clone(srv.URLs)
		if srv.Username == "" && isTURN(srv.URLs) && len(n.creds.Secret) > 0 {
			if !mint() {
				continue
			}
			srv.Username, srv.Credential = name, pass
		}
		out = append(out, srv)
	}
	if n.turn != nil {
		h := n.cfg.TURN.Host
		if h == "" {
			h = hostOnly(host)
		}
		if h != "" && mint() {
			var urls []string
			if a, ok := n.turn.UDPAddr().(*net.UDPAddr); ok {
				urls = append(urls, "turn:"+net.JoinHostPort(h, strconv.Itoa(a.Port))+"?transport=udp")
			}
			if a, ok := n.turn.TCPAddr().(*net.TCPAddr); ok {
				urls = append(urls, "turn:"+net.JoinHostPort(h, strconv.Itoa(a.Port))+"?transport=tcp")
			}
			out = append(out, webrtc.ICEServer{URLs: urls, Username: name, Credential: pass})
		}
	}
	return out
}

// isTURN reports whether any of urls is a turn: or turns: URL.
func isTURN(urls []string) bool {
	return slices.ContainsFunc(urls, func(u string) bool {
		return strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:")
	})
}

// hostOnly strips a port (and IPv6 brackets) from a Host header value.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// close releases the sockets; it is safe on a half-built network.
func (n *network) close() {
	if n.turn != nil {
		_ = n.turn.Close()
	}
	if n.tcp != nil {
		_ = n.tcp.Close()
	}
	if n.udp != nil {
		_ = n.udp.Close()
	}
}

// Close ends every participant's connections and releases the SFU's
// sockets and relay.
func (s *SFU) Close() {
	s.mu.Lock()
	var ps []*Participant
	for _, r := range s.rooms {
		r.mu.Lock()
		for _, p := range r.participants {
			ps = append(ps, p)
		}
		r.mu.Unlock()
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	s.net.close()
}

// quiet is a Pion logger that logs nothing; the SFU logs what matters.
func quiet(scope string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope(scope, logging.LogLevelDisabled, nil)
}
