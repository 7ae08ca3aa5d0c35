package bridge

import (
	"bytes"

	"github.com/gobwas/ws"

	"wsbridge/internal/testutil"
)

// Short names for the conformance tables over testutil's frame builders:
// a frame's first byte (FIN, RSV bits, opcode) as one value, as RFC 6455
// §5.2 draws it.
const (
	bFin  = testutil.Fin
	bRsv1 = testutil.Rsv1
	bRsv2 = testutil.Rsv2
	bRsv3 = testutil.Rsv3

	bCont   = byte(ws.OpContinuation)
	bText   = byte(ws.OpText)
	bBinary = byte(ws.OpBinary)
	bClose  = byte(ws.OpClose)
	bPing   = byte(ws.OpPing)
	bPong   = byte(ws.OpPong)
)

func clientHeader(b0 byte, n uint64) []byte {
	return testutil.MaskedHeader(b0&bFin != 0, ws.OpCode(b0&^bFin), n)
}

func clientFrame(b0 byte, p []byte) []byte {
	return testutil.MaskedFrame(b0&bFin != 0, ws.OpCode(b0&^bFin), p)
}

func unmaskedFrame(b0 byte, p []byte) []byte {
	return testutil.UnmaskedFrame(b0&bFin != 0, ws.OpCode(b0&^bFin), p)
}

func closePayload(code uint16, reason string) []byte {
	return testutil.ClosePayload(ws.StatusCode(code), reason)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
