package bridge

import (
	"github.com/nats-io/nats.go"

	"wsbridge/internal/metrics"
	"wsbridge/internal/publish"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// The bridge's side of internal/publish: the outbox's wiring, and each
// connection as the publish.Member its pubs and reqs answer.

var _ publish.Member = (*conn)(nil)

// newOutbox makes the outbox on s.nc; s.pub must be set.
func newOutbox(s *Server) (*publish.Outbox, error) {
	return publish.New(publish.Config{
		NATS:                s.nc,
		JetStream:           s.pub,
		MapError:            natsError,
		MaxInflightRequests: s.cfg.MaxInflightRequests,
		Published:           s.metrics.Published,
		RequestRefused:      func() { s.metrics.InflightRefused(metrics.InflightReq) },
	})
}

// OK implements publish.Member.
func (c *conn) OK(ref string) {
	c.pushText(func(b []byte) []byte { return wire.AppendOK(b, ref) }, true)
}

// Err implements publish.Member.
func (c *conn) Err(ref string, e *wire.Error) {
	c.pushText(func(b []byte) []byte { return wire.AppendErr(b, ref, e) }, true)
}

// Reply implements publish.Member: the reply envelope, built from m
// before Reply returns.
func (c *conn) Reply(ref string, m *nats.Msg) {
	c.pushText(func(b []byte) []byte {
		b = append(b, `{"op":"reply","ref":`...)
		b = wire.AppendString(b, ref)
		b = wire.AppendBody(b, m.Data, m.Header, "")
		return append(b, '}')
	}, true)
}

// Abort implements publish.Member: a raw-mode client whose message NATS
// refused is closed, 1009 when it was too large for NATS.
func (c *conn) Abort(e *wire.Error) {
	ce := wsframe.CloseUnavailable
	if e.Code == wire.CodePayloadTooLarge {
		ce = wsframe.ErrTooBig
	}
	c.requestClose(ce)
}
