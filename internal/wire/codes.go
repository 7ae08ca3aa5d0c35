package wire

// Protocol error codes sent in {"op":"err","code":...}. They are part of
// the wire protocol (docs/PROTOCOL.md): never rename one.
const (
	CodeBadRequest           = "bad_request"
	CodeInvalidSubject       = "invalid_subject"
	CodePermissionDenied     = "permission_denied"
	CodeDuplicateID          = "duplicate_id"
	CodeNotFound             = "not_found"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodePayloadTooLarge      = "payload_too_large"
	CodeTimeout              = "timeout"
	CodeNoResponders         = "no_responders"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
	CodeRateLimited          = "rate_limited"
	CodeTokenExpired         = "token_expired"
	CodeUnauthorized         = "unauthorized"
	CodeNoStream             = "no_stream"
	CodeTooManyRequests      = "too_many_requests"
)

// Error is a failed client operation: it becomes an err envelope and the
// connection stays open. Code is one of the constants above; Message is
// sent to the client as is.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return "wire: " + e.Code + ": " + e.Message }

// Errf returns an Error with code and message.
func Errf(code, message string) *Error { return &Error{code, message} }
