package turnserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/turn/v5"
)

// DefaultMaxAllocations bounds the relays one set of credentials may hold
// at once: a participant's two peer connections, a connectivity check, and
// room for retries.
const DefaultMaxAllocations = 8

// Config sets up a Server.
type Config struct {
	// Net is the network to listen on; nil means the host's own.
	Net transport.Net
	// UDPAddr and TCPAddr are where clients reach the relay ("host:port",
	// ":port" for every IPv4 address); an empty one is not served. At
	// least one is needed.
	UDPAddr, TCPAddr string
	// Realm names the server in the TURN exchange; "bedside" if empty.
	Realm string
	// Credentials check the clients' TURN REST credentials.
	Credentials Credentials
	// Peers are the only addresses the relay sends to.
	Peers Peers
	// RelayIP is the address given to clients as their relayed address.
	// Relayed traffic only ever flows between the relay and the SFU, so
	// this is an address of this machine that the SFU can reach.
	RelayIP net.IP
	// MaxAllocations bounds the relays open at once per username;
	// DefaultMaxAllocations if zero.
	MaxAllocations int
	// Log receives refusals and failures; nil discards them.
	Log *slog.Logger
	// Now is the clock credentials are checked against; time.Now if nil.
	Now func() time.Time
}

// Server is a running TURN relay. Close stops it.
type Server struct {
	srv      *turn.Server
	udp, tcp net.Addr
	log      *slog.Logger

	mu     sync.Mutex
	allocs map[string]int // open relays by username
}

// ErrRelayTCP is the refusal of a TCP relay (RFC 6062): the relay carries
// UDP media only.
var ErrRelayTCP = errors.New("turn: only UDP relays are offered")

// New starts a TURN server on cfg's addresses.
func New(cfg Config) (*Server, error) {
	if cfg.UDPAddr == "" && cfg.TCPAddr == "" {
		return nil, errors.New("turn: no address to listen on")
	}
	if len(cfg.Credentials.Secret) == 0 {
		return nil, errors.New("turn: no shared secret")
	}
	if cfg.RelayIP == nil || cfg.RelayIP.To4() == nil {
		return nil, fmt.Errorf("turn: relay address %v: want an IPv4 address of this machine", cfg.RelayIP)
	}
	if cfg.Net == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("turn: network: %w", err)
		}
		cfg.Net = n
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = "bedside"
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	s := &Server{log: cfg.Log, allocs: make(map[string]int)}
	gen := &relays{net: cfg.Net, ip: cfg.RelayIP, peers: cfg.Peers}
	permit := func(_ net.Addr, peer net.IP) bool {
		ip, ok := netip.AddrFromSlice(peer)
		return ok && cfg.Peers.allowIP(ip.Unmap())
	}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: quietLogs{},
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if err := cfg.Credentials.Valid(ra.Username, cfg.Now()); err != nil {
				s.log.Info("turn credentials refused", "from", ra.SrcAddr.String(), "err", err)
				return "", nil, false
			}
			// The password is checked by the server against this key.
			return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, cfg.Credentials.Password(ra.Username)), true
		},
		QuotaHandler: func(user, _ string, _ net.Addr) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.allocs[user] < cfg.MaxAllocations
		},
		EventHandler: turn.EventHandler{
			OnAuth: func(src, _ net.Addr, proto, _, _ string, method string, verdict bool) {
				if !verdict {
					s.log.Info("turn request refused", "from", src.String(), "transport", proto, "method", method)
				}
			},
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) { s.count(user, 1) },
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) { s.count(user, -1) },
		},
	}
	var closers []func() error
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			_ = c()
		}
		return nil, err
	}
	if cfg.UDPAddr != "" {
		pc, err := cfg.Net.ListenPacket("udp4", cfg.UDPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on udp %s: %w", cfg.UDPAddr, err))
		}
		closers = append(closers, pc.Close)
		s.udp = pc.LocalAddr()
		sc.PacketConnConfigs = []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: permit}}
	}
	if cfg.TCPAddr != "" {
		addr, err := net.ResolveTCPAddr("tcp4", cfg.TCPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn: tcp address %s: %w", cfg.TCPAddr, err))
		}
		ln, err := cfg.Net.ListenTCP("tcp4", addr)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on tcp %s: %w", cfg.TCPAddr, err))
		}
		closers = append(closers, ln.Close)
		s.tcp = ln.Addr()
		sc.ListenerConfigs = []turn.ListenerConfig{{Listener: ln, RelayAddressGenerator: gen, PermissionHandler: permit}}
	}
	srv, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turn: start: %w", err))
	}
	s.srv = srv
	return s, nil
}

func (s *Server) count(user string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs[user] += d
	if s.allocs[user] <= 0 {
		delete(s.allocs, user)
	}
}

// UDPAddr is the address TURN over UDP listens on, nil if not served.
func (s *Server) UDPAddr() net.Addr { return s.udp }

// TCPAddr is the address TURN over TCP listens on, nil if not served.
func (s *Server) TCPAddr() net.Addr { return s.tcp }

// Allocations returns how many relays are open.
func (s *Server) Allocations() int { return s.srv.AllocationCount() }

// Close stops the server and ends every relay.
func (s *Server) Close() error { return s.srv.Close() }

// quietLogs silences pion/turn's own logging; the Server logs what matters
// through slog.
type quietLogs struct{}

func (quietLogs) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("turn", logging.LogLevelDisabled, nil)
}

// Relay generator types, named here so peers.go reads plainly.
type (
	allocateListenerConfig = turn.AllocateListenerConfig
	allocateConnConfig     = turn.AllocateConnConfig
)

var _ turn.RelayAddressGenerator = (*relays)(nil)
