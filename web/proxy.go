package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// realClient sets r.RemoteAddr to the client's address when the request
// came through a trusted reverse proxy: the right-most address in
// X-Forwarded-For that is not itself a trusted proxy. From anyone else the
// header is ignored, so a client cannot choose the address that sign-in
// throttling, the audit trail and the metrics check see.
func (s *server) realClient(next http.Handler) http.Handler {
	if len(s.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr, ok := s.forwardedFor(r); ok {
			r.RemoteAddr = net.JoinHostPort(addr.String(), "0")
		}
		next.ServeHTTP(w, r)
	})
}

// forwardedFor is the client address X-Forwarded-For names, if the
// request's peer is a trusted proxy and the header holds one.
func (s *server) forwardedFor(r *http.Request) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.trusted(peer.Addr()) {
		return netip.Addr{}, false
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a malformed hop: trust none of it
		}
		if a = a.Unmap(); !s.trusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (s *server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
