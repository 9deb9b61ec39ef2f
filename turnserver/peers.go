package turnserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/pion/transport/v5"
)

// Peers are the addresses a relay may send to. Anything else is dropped,
// so valid credentials open a path to the call's media and to nothing
// else on this machine or its network.
type Peers struct {
	// Media are the SFU's media sockets (address and port).
	Media []netip.AddrPort
	// Aliases maps a public address clients are told about (a 1:1 NAT's)
	// to the local address the media sockets listen on, so relayed media
	// goes straight to the socket instead of out and back through the NAT.
	Aliases map[netip.Addr]netip.Addr
	// Extra are further networks the relay may reach on any port (other
	// media servers of a cluster); none by default.
	Extra []netip.Prefix
}

// route returns where a datagram a client addressed to dst goes, or false
// if the relay may not send there.
func (p Peers) route(dst netip.AddrPort) (netip.AddrPort, bool) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if local, ok := p.Aliases[dst.Addr()]; ok {
		dst = netip.AddrPortFrom(local, dst.Port())
	}
	if slices.Contains(p.Media, dst) {
		return dst, true
	}
	for _, pre := range p.Extra {
		if pre.Contains(dst.Addr()) {
			return dst, true
		}
	}
	return dst, false
}

// allowIP reports whether a client may ask for a permission to ip.
func (p Peers) allowIP(ip netip.Addr) bool {
	if _, ok := p.Aliases[ip]; ok {
		return true
	}
	for _, m := range p.Media {
		if m.Addr() == ip {
			return true
		}
	}
	for _, pre := range p.Extra {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// errPeerRefused is returned for a datagram to an address the relay may
// not reach.
var errPeerRefused = errors.New("turn: peer address not allowed")

// relays makes UDP relay sockets that only talk to the allowed peers.
type relays struct {
	net   transport.Net
	ip    net.IP
	peers Peers
}

// Validate implements turn.RelayAddressGenerator.
func (r *relays) Validate() error { return nil }

// AllocatePacketConn implements turn.RelayAddressGenerator.
func (r *relays) AllocatePacketConn(conf allocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if conf.Network != "udp4" {
		return nil, nil, fmt.Errorf("turn: %s relays are not offered, only udp4", conf.Network)
	}
	pc, err := r.net.ListenPacket("udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(conf.RequestedPort)))
	if err != nil {
		return nil, nil, fmt.Errorf("turn: relay socket: %w", err)
	}
	la, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("turn: relay socket address %v", pc.LocalAddr())
	}
	return &guarded{PacketConn: pc, peers: r.peers, named: make(map[netip.AddrPort]netip.AddrPort)},
		&net.UDPAddr{IP: r.ip, Port: la.Port}, nil
}

// AllocateListener implements turn.RelayAddressGenerator: TCP relays are
// refused.
func (r *relays) AllocateListener(allocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrRelayTCP
}

// AllocateConn implements turn.RelayAddressGenerator: TCP relays are
// refused.
func (r *relays) AllocateConn(allocateConnConfig) (net.Conn, error) { return nil, ErrRelayTCP }

// guarded is a relay socket that sends only to allowed peers. Datagrams
// to a peer reached through an alias come back under the alias, so they
// match the permission the client made for it.
type guarded struct {
	net.PacketConn
	peers Peers

	mu    sync.Mutex
	named map[netip.AddrPort]netip.AddrPort // where we sent -> what the client named
}

func (g *guarded) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errPeerRefused
	}
	dst := ua.AddrPort()
	to, ok := g.peers.route(dst)
	if !ok {
		return 0, fmt.Errorf("%w: %s", errPeerRefused, dst)
	}
	if to != dst {
		g.mu.Lock()
		g.named[to] = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		g.mu.Unlock()
	}
	return g.PacketConn.WriteTo(p, net.UDPAddrFromAddrPort(to))
}

func (g *guarded) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		if _, ok := g.peers.route(src); !ok {
			continue // not a peer we relay for
		}
		g.mu.Lock()
		if named, ok := g.named[src]; ok {
			src = named
		}
		g.mu.Unlock()
		return n, net.UDPAddrFromAddrPort(src), nil
	}
}
