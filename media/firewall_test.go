package media_test

import (
	"net"
	"sync"

	"github.com/pion/transport/v5"
)

// firewall is the host's network seen through a packet filter, for tests
// of what gets through when a network blocks some traffic. pion/transport's
// vnet has no TCP, so paths that need TCP run on real loopback sockets
// with this filter in front of one side.
type firewall struct {
	transport.Net
	// blockUDP drops every UDP datagram in and out, as a network that
	// blocks UDP does.
	blockUDP bool

	mu sync.Mutex
	// refuse lists TCP listening addresses whose incoming connections are
	// dropped at once, as a firewall in front of that port does.
	refuse []string
}

// refuseTCP drops, from now on, connections to the listener at addr.
func (f *firewall) refuseTCP(addr net.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = append(f.refuse, addr.String())
}

func (f *firewall) refused(addr net.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.refuse {
		if a == addr.String() {
			return true
		}
	}
	return false
}

func (f *firewall) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := f.Net.ListenUDP(network, laddr)
	if err != nil || !f.blockUDP {
		return c, err
	}
	return blackhole{c}, nil
}

func (f *firewall) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := f.Net.ListenPacket(network, address)
	if err != nil || !f.blockUDP {
		return c, err
	}
	if u, ok := c.(transport.UDPConn); ok {
		return blackhole{u}, nil
	}
	_ = c.Close()
	return nil, &net.OpError{Op: "listen", Net: network, Err: net.ErrClosed}
}

func (f *firewall) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := f.Net.DialUDP(network, laddr, raddr)
	if err != nil || !f.blockUDP {
		return c, err
	}
	return blackhole{c}, nil
}

func (f *firewall) ListenTCP(network string, laddr *net.TCPAddr) (transport.TCPListener, error) {
	l, err := f.Net.ListenTCP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &filteredListener{TCPListener: l, fw: f}, nil
}

// filteredListener closes the connections the firewall refuses.
type filteredListener struct {
	transport.TCPListener
	fw *firewall
}

func (l *filteredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.Accept()
		if err != nil || !l.fw.refused(l.Addr()) {
			return c, err
		}
		_ = c.Close()
	}
}

// blackhole is a UDP socket whose datagrams never leave or arrive.
type blackhole struct{ transport.UDPConn }

func (b blackhole) Write(p []byte) (int, error)                      { return len(p), nil }
func (b blackhole) WriteTo(p []byte, _ net.Addr) (int, error)        { return len(p), nil }
func (b blackhole) WriteToUDP(p []byte, _ *net.UDPAddr) (int, error) { return len(p), nil }
func (b blackhole) WriteMsgUDP(p, _ []byte, _ *net.UDPAddr) (int, int, error) {
	return len(p), 0, nil
}

func (b blackhole) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if _, _, err := b.UDPConn.ReadFrom(p); err != nil {
			return 0, nil, err
		}
	}
}

func (b blackhole) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	for {
		if _, _, err := b.UDPConn.ReadFromUDP(p); err != nil {
			return 0, nil, err
		}
	}
}

func (b blackhole) Read(p []byte) (int, error) {
	for {
		if _, err := b.UDPConn.Read(p); err != nil {
			return 0, err
		}
	}
}

func (b blackhole) ReadMsgUDP(p, oob []byte) (int, int, int, *net.UDPAddr, error) {
	for {
		if _, _, _, _, err := b.UDPConn.ReadMsgUDP(p, oob); err != nil {
			return 0, 0, 0, nil, err
		}
	}
}
