package bridge

import (
	"github.com/gobwas/ws"

	"wsbridge/internal/testutil"
)

// Short names for the hand-built frames of the bridge's tests over
// testutil's frame builders: a frame's first byte (FIN, opcode) as one
// value, as RFC 6455 §5.2 draws it. The conformance cases build theirs in
// wsframetest.
const (
	bFin = testutil.Fin

	bCont  = byte(ws.OpContinuation)
	bText  = byte(ws.OpText)
	bClose = byte(ws.OpClose)
	bPing  = byte(ws.OpPing)
)

func clientFrame(b0 byte, p []byte) []byte {
	return testutil.MaskedFrame(b0&bFin != 0, ws.OpCode(b0&^bFin), p)
}

func closePayload(code uint16, reason string) []byte {
	return testutil.ClosePayload(ws.StatusCode(code), reason)
}
