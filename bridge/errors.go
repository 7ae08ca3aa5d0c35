package bridge

import (
	"context"
	"errors"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Protocol error codes sent in {"op":"err","code":...}. They are part of
// the wire protocol (docs/PROTOCOL.md): never rename one.
const (
	codeBadRequest           = "bad_request"
	codeInvalidSubject       = "invalid_subject"
	codePermissionDenied     = "permission_denied"
	codeDuplicateID          = "duplicate_id"
	codeNotFound             = "not_found"
	codeTooManySubscriptions = "too_many_subscriptions"
	codePayloadTooLarge      = "payload_too_large"
	codeTimeout              = "timeout"
	codeNoResponders         = "no_responders"
	codeUnavailable          = "unavailable"
	codeInternal             = "internal"
	codeRateLimited          = "rate_limited"
	codeTokenExpired         = "token_expired"
	codeUnauthorized         = "unauthorized"
	codeNoStream             = "no_stream"
)

// opError is a failed client operation: it becomes an err envelope and the
// connection stays open.
type opError struct {
	code    string
	message string
}

func (e *opError) Error() string { return "bridge: " + e.code + ": " + e.message }

func errf(code, message string) *opError { return &opError{code, message} }

// natsError maps an error from nats.go onto the protocol's codes. It is the
// only place that does.
func natsError(err error) *opError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrMaxPayload):
		return errf(codePayloadTooLarge, "payload exceeds the NATS server's max_payload")
	case errors.Is(err, nats.ErrNoResponders):
		return errf(codeNoResponders, "no service is listening on the subject")
	case errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return errf(codeNoStream, "no JetStream stream covers the subject")
	case errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return errf(codeTimeout, "timed out")
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return errf(codeUnavailable, "too many acked publishes in flight")
	case errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrDisconnected):
		return errf(codeUnavailable, "NATS is unavailable")
	case errors.Is(err, nats.ErrBadSubject):
		return errf(codeInvalidSubject, "invalid subject")
	}
	return errf(codeInternal, "internal error")
}

// Closes the bridge initiates; each carries a code and a reason (RFC 6455
// §7.4.1). Protocol violations found while reading frames are in frame.go.
var (
	closeGoingAway   = &closeError{ws.StatusGoingAway, "server shutting down"}
	closeBinary      = &closeError{ws.StatusUnsupportedData, "binary frames are not accepted on /ws"}
	closeSlow        = &closeError{ws.StatusPolicyViolation, "slow consumer"}
	closePingTimeout = &closeError{ws.StatusGoingAway, "ping timeout"}
	closeInternal    = &closeError{ws.StatusInternalServerError, "internal error"}
	closeNoPublish   = &closeError{ws.StatusPolicyViolation, "this connection has no pub subject"}
	closeExpired     = &closeError{ws.StatusPolicyViolation, "token expired"}
)
