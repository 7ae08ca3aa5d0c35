package wsframe

import (
	"strconv"

	"github.com/gobwas/ws"
)

// CloseError ends a connection with a WebSocket close code and a reason
// that is sent to the peer (RFC 6455 §7.4). Every close the bridge sends
// is one; the table below lists them all.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return "wsframe: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// ReasonClosing is the reason of the close frame that answers the peer's.
const ReasonClosing = "closing"

// The one table of closes: each code and its reason (RFC 6455 §7.4.1).
// Reasons are part of the protocol (docs/PROTOCOL.md): never reword one.
var (
	// Protocol violations found while reading frames (RFC 6455 §5, §8.1,
	// RFC 7692 §6).
	ErrUnmasked        = &CloseError{ws.StatusProtocolError, "unmasked client frame"}
	ErrReservedBits    = &CloseError{ws.StatusProtocolError, "reserved bits set"}
	ErrReservedOpCode  = &CloseError{ws.StatusProtocolError, "reserved opcode"}
	ErrControlTooLong  = &CloseError{ws.StatusProtocolError, "control frame too long"}
	ErrControlFragment = &CloseError{ws.StatusProtocolError, "fragmented control frame"}
	ErrUnexpectedCont  = &CloseError{ws.StatusProtocolError, "continuation without a started message"}
	ErrExpectedCont    = &CloseError{ws.StatusProtocolError, "data frame inside a fragmented message"}
	ErrBadLength       = &CloseError{ws.StatusProtocolError, "invalid payload length"}
	ErrCloseLength     = &CloseError{ws.StatusProtocolError, "invalid close payload"}
	ErrCloseCode       = &CloseError{ws.StatusProtocolError, "invalid close code"}
	ErrInvalidUTF8     = &CloseError{ws.StatusInvalidFramePayloadData, "invalid utf-8"}
	ErrBadDeflate      = &CloseError{ws.StatusInvalidFramePayloadData, "invalid compressed data"}
	ErrTooBig          = &CloseError{ws.StatusMessageTooBig, "message too big"}
	// ErrBusy is 1013 Try Again Later: the node's budget for partly
	// assembled messages is spent (Budget).
	ErrBusy = &CloseError{ws.StatusCode(1013), "server busy: too many partial messages; try again later"}

	// Closes the bridge initiates. A close the peer started is echoed with
	// its own code (RFC 6455 §5.5.1) and ReasonClosing.
	CloseGoingAway   = &CloseError{ws.StatusGoingAway, "server shutting down"}
	ClosePingTimeout = &CloseError{ws.StatusGoingAway, "ping timeout"}
	CloseBinary      = &CloseError{ws.StatusUnsupportedData, "binary frames are not accepted on /ws"}
	CloseSlow        = &CloseError{ws.StatusPolicyViolation, "slow consumer"}
	CloseNoPublish   = &CloseError{ws.StatusPolicyViolation, "this connection has no pub subject"}
	CloseExpired     = &CloseError{ws.StatusPolicyViolation, "token expired"}
	CloseRateLimited = &CloseError{ws.StatusPolicyViolation, "rate limit exceeded"}
	CloseInternal    = &CloseError{ws.StatusInternalServerError, "internal error"}
	// CloseRebalance is 1012 Service Restart (IANA registry): the node
	// sheds this client to even out the cluster's load, and the client
	// should reconnect at once, through the load balancer.
	CloseRebalance = &CloseError{ws.StatusCode(1012), "rebalance"}
	// CloseUnavailable is 1013 Try Again Later (IANA registry).
	CloseUnavailable = &CloseError{ws.StatusCode(1013), "NATS unavailable, try again later"}
)
