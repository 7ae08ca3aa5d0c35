package bridge

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"wsbridge/internal/metrics"
	"wsbridge/internal/ratelimit"
	"wsbridge/internal/wsframe"
)

// admit decides whether an upgrade may proceed, in order: well-formed
// target, connection limits (503, 429), origin policy (403), token (401),
// raw-mode subjects (400, 403). Every refusal is counted and logged, with
// the remote address and the reason and never the token (logRefusal).
func (s *Server) admit(addr net.Addr, hr *wsframe.Request) (*conn, error) {
	refuse := func(kind metrics.Refusal, status int, reason string) error {
		s.refused(addr, kind, status, reason)
		return reject(status, reason)
	}
	if s.draining.Load() {
		return nil, refuse(metrics.RefusedDraining, http.StatusServiceUnavailable, "server shutting down")
	}
	if ok, after := s.takeHandshake(time.Now()); !ok {
		s.refused(addr, metrics.RefusedRate, http.StatusServiceUnavailable, "handshake rate exceeded")
		return nil, rejectRetry("too many handshakes, retry later", after)
	}
	target, err := url.ParseRequestURI(hr.URI)
	if err != nil {
		return nil, refuse(metrics.RefusedBadRequest, http.StatusBadRequest, "malformed request target")
	}
	ap := addrPort(addr)
	ip := ap.Addr()
	switch s.slots.Take(ip) {
	case ratelimit.NodeFull:
		return nil, refuse(metrics.RefusedLimit, http.StatusServiceUnavailable, "too many connections")
	case ratelimit.AddrFull:
		return nil, refuse(metrics.RefusedLimit, http.StatusTooManyRequests, "too many connections from this address")
	}
	admitted := false
	defer func() {
		if !admitted {
			s.slots.Release(ip)
		}
	}()
	if s.cfg.CheckHost != nil && !s.cfg.CheckHost(hr.Host) {
		// A name this service does not answer to: a DNS-rebinding page
		// reaching an internal bridge through the victim's browser.
		return nil, refuse(metrics.RefusedOrigin, http.StatusForbidden, "host not allowed")
	}
	if hr.Origin != "" && s.cfg.CheckOrigin != nil && !s.cfg.CheckOrigin(hr.Origin, hr.Host, hr.Secure) {
		return nil, refuse(metrics.RefusedOrigin, http.StatusForbidden, "origin not allowed")
	}
	// Browsers attach cookies to cross-site requests too; the origin
	// check above is what makes a cookie safe to accept here.
	ident, err := s.cfg.Auth.Authenticate(hr.Token(s.cfg.TokenCookie))
	if err != nil {
		return nil, refuse(metrics.RefusedAuth, http.StatusUnauthorized, strings.TrimPrefix(err.Error(), "auth: "))
	}
	c := &conn{s: s, fd: -1, ident: ident, remote: ap, regIdx: -1}
	c.asm.Configure(s.cfg.MaxPayload, false) // deflate, once negotiated
	c.asm.Share(s.partials)
	c.bucket.Fill(s.cfg.RateBurst)
	if target.Path == "/ws/raw" {
		rm, status, err := s.parseRaw(target.Query(), ident)
		if err != nil {
			kind := metrics.RefusedBadRequest
			if status == http.StatusForbidden {
				kind = metrics.RefusedAuth // the token lacks the permission
			}
			return nil, refuse(kind, status, err.Error())
		}
		if rm.sub != "" && !s.natsUp.Load() {
			// Its 101 would promise a live subscription.
			return nil, refuse(metrics.RefusedLimit, http.StatusServiceUnavailable, "NATS is unavailable; retry")
		}
		c.raw = rm
	}
	admitted = true
	return c, nil
}

// refused counts a refused handshake and logs it, rate-limited: a flood
// of bad handshakes costs a line per second, not one per attempt, and the
// next line says how many were left out.
func (s *Server) refused(addr net.Addr, kind metrics.Refusal, status int, reason string) {
	s.metrics.Refused(kind, status)
	ok, suppressed := s.refusalLog.Allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"remote", addr.String(), "status", status, "reason", reason}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	s.log.Info("handshake refused", attrs...)
}

// addrPort returns a's address and port, IPv4 unmapped.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
