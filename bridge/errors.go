package bridge

import (
	"context"
	"errors"

	"wsbridge/internal/wire"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsError maps an error from nats.go onto the protocol's codes. It is the
// only place that does.
func natsError(err error) *wire.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrMaxPayload):
		return wire.Errf(wire.CodePayloadTooLarge, "payload exceeds the NATS server's max_payload")
	case errors.Is(err, nats.ErrNoResponders):
		return wire.Errf(wire.CodeNoResponders, "no service is listening on the subject")
	case errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return wire.Errf(wire.CodeNoStream, "no JetStream stream covers the subject")
	case errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return wire.Errf(wire.CodeTimeout, "timed out")
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return wire.Errf(wire.CodeUnavailable, "too many acked publishes in flight")
	case errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrDisconnected):
		return wire.Errf(wire.CodeUnavailable, "NATS is unavailable")
	case errors.Is(err, nats.ErrBadSubject):
		return wire.Errf(wire.CodeInvalidSubject, "invalid subject")
	}
	// An error the stream answered: the client's message or request was
	// refused (a Nats-Expected-* mismatch, a bad header, a limit) or the
	// stream is not available right now.
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.Code == 503:
			return wire.Errf(wire.CodeUnavailable, "the stream is unavailable: "+api.Description)
		case api.Code >= 400 && api.Code < 500:
			return wire.Errf(wire.CodeBadRequest, "the stream refused it: "+api.Description)
		}
	}
	return wire.Errf(wire.CodeInternal, "internal error")
}
