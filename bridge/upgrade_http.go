package bridge

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"wsbridge/internal/metrics"
	"wsbridge/internal/wsframe"

	"github.com/gobwas/ws"
)

// serveUpgrade answers /ws and /ws/raw when they reach net/http: a plain
// GET gets 426, and an upgrade is one that followed other requests on a
// keep-alive connection (a proxy that reuses upstream connections sends
// those). The first request of a connection takes handshake's zero-copy
// path instead; this one costs net/http's parsing, once per connection.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	begin := time.Now()
	if r.Method != http.MethodGet {
		s.refused(remoteAddr(r), metrics.RefusedBadRequest, http.StatusMethodNotAllowed, "method not allowed")
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "a WebSocket upgrade is a GET request", http.StatusMethodNotAllowed)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.refused(remoteAddr(r), metrics.RefusedBadRequest, http.StatusUpgradeRequired, "not a WebSocket upgrade")
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "this endpoint speaks WebSocket: send an Upgrade request", http.StatusUpgradeRequired)
		return
	}
	hr := wsframe.HTTPRequest(r)
	// net/http sees the replaying wrapper, not the tls.Conn inside it, so
	// r.TLS is nil here: a TLS listener serves nothing else.
	hr.Secure = hr.Secure || s.cfg.TLS != nil
	c, err := s.admit(remoteAddr(r), hr)
	if err != nil {
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) {
			http.Error(w, strings.TrimSpace(rej.Error()), rej.StatusCode())
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == wsframe.ProtocolV1 }}
	var ext *wsframe.Negotiation
	if s.cfg.Compression {
		ext = wsframe.Negotiator()
		u.Negotiate = ext.Negotiate
	}
	netc, rw, _, err := u.Upgrade(r, w) // writes the 101, or the refusal
	if err == nil && c.raw == nil {
		_ = netc.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
		hello := s.helloFrame(c)
		if _, err = netc.Write(hello); err == nil {
			s.metrics.Sent(metrics.OutHello, 1, len(hello))
		}
	}
	if err != nil {
		s.slots.Release(c.remote.Addr())
		if netc != nil {
			_ = netc.Close()
		}
		return
	}
	if ext != nil {
		c.deflate = ext.Accepted()
		c.asm.Configure(s.cfg.MaxPayload, c.deflate)
	}
	// Bytes the client sent after its request, in net/http's buffer and
	// in the handshake's replay of the connection's first bytes.
	var in []byte
	if n := rw.Reader.Buffered(); n > 0 {
		in = make([]byte, n)
		_, _ = io.ReadFull(rw.Reader, in)
	}
	if pc, ok := netc.(*prefixConn); ok {
		pc.done()                  // an upgraded connection counts under MaxConnections instead
		in = append(in, pc.pre...) // replayed bytes net/http had not read yet
		netc = pc.Conn
	}
	if len(in) > 0 {
		c.in = in
	}
	_ = netc.SetDeadline(time.Time{})
	c.netc = netc
	s.metrics.ObserveHandshake(time.Since(begin))
	s.adopt(c)
}

// remoteAddr is the peer of a request that reached net/http.
func remoteAddr(r *http.Request) net.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{}
}
