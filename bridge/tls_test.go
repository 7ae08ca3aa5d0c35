package bridge

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"wsbridge/internal/tlsconn"
	"wsbridge/internal/wsframe"
	"wsbridge/netpoll"
)

// The transport's own tests are in internal/tlsconn; these drive wss://
// connections through the bridge.

var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
})

// testTLSConfigs returns a server configuration like CertReloader's
// default (ChaCha20-Poly1305 preferred), with a self-signed certificate,
// and a client configuration that trusts it. internal/tlsconn's own tests
// run over AES-GCM.
func testTLSConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{
		GetConfigForClient:          tlsconn.PreferChaCha20,
		MinVersion:                  tls.VersionTLS12,
		Certificates:                []tls.Certificate{cert},
		NextProtos:                  []string{"http/1.1"},
		DynamicRecordSizingDisabled: true,
	}
	return server, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// tlsPair is a handshaken server tls.Conn on the bridge's transport,
// attached to its non-blocking socket, and the client.
type tlsPair struct {
	t      *tlsconn.Transport
	fd     int
	client *tls.Conn
	raw    net.Conn // the client's TCP connection, under client
}

// newTLSPair handshakes over loopback, then attaches the server side as
// prepare does.
func newTLSPair(t testing.TB) *tlsPair {
	t.Helper()
	if netpoll.Portable {
		t.Skip("portable backend: TLS connections are served by internal/goio, never attached to a bare fd")
	}
	scfg, ccfg := testTLSConfigs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(raw, ccfg)
	tc := tlsconn.Server(nc, scfg)
	errc := make(chan error, 1)
	go func() { errc <- tc.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	tr := tlsconn.Of(tc)
	fd, err := detach(tr.NetConn())
	if err != nil {
		t.Fatal(err)
	}
	tr.Attach(fd)
	t.Cleanup(func() { tr.Release(); syscall.Close(fd) })
	return &tlsPair{t: tr, fd: fd, client: client, raw: raw}
}

// sealed returns the record(s) the client's tls.Conn writes for msg,
// without sending them.
func sealed(t *testing.T, client *tls.Conn, cc *captureConn, msg []byte) []byte {
	t.Helper()
	cc.capture = true
	defer func() { cc.capture = false }()
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	out := cc.buf
	cc.buf = nil
	return out
}

// captureConn diverts writes into buf while capture is set.
type captureConn struct {
	net.Conn
	capture bool
	buf     []byte
}

func (c *captureConn) Write(p []byte) (int, error) {
	if c.capture {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestTLSHalfRecordHoldsNoWorker: a wss:// client that sends half a TLS
// record and stalls does not keep the only worker from serving others.
func TestTLSHalfRecordHoldsNoWorker(t *testing.T) {
	ns := startTestNATS(t)
	srv := startTestBridgeOver(t, ns, transport{"wss", true}, func(c *Config) { c.Workers = 1 })
	raw, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	cc := &captureConn{Conn: raw}
	tc := tls.Client(cc, srv.client)
	stall := &rawClient{t: t, nc: tc, br: bufio.NewReader(tc)}
	stall.write([]byte(upgradeRequest("/ws")))
	stall.expectUpgrade(srv)
	rec := sealed(t, tc, cc, clientFrame(bFin|bText, pingCmd("stalled", 0)))
	if _, err := raw.Write(rec[:len(rec)/2]); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		dialWS(t, srv).expectAlive()
	}
	// The stalled one finishes its record and is answered.
	if _, err := raw.Write(rec[len(rec)/2:]); err != nil {
		t.Fatal(err)
	}
	stall.expectFrame(ws.OpText, pongCmd("stalled"))
	stall.expectAlive()
}

// TestTLSNoGoroutinePerConnection: wss:// connections cost no goroutine
// once their handshake is done.
func TestTLSNoGoroutinePerConnection(t *testing.T) {
	if netpoll.Portable {
		t.Skip("portable backend: a reader and a writer goroutine per connection by design")
	}
	ns := startTestNATS(t)
	srv := startTestBridgeOver(t, ns, transport{"wss", true}, nil)
	dialWS(t, srv).expectAlive() // the server's own goroutines are up
	before := runtime.NumGoroutine()
	const n = 100
	conns := make([]*rawClient, n)
	for i := range conns {
		conns[i] = dialWS(t, srv)
	}
	eventually(t, "every connection registered", func() bool { return srv.Stats().Connections == n+1 })
	eventually(t, "handshake goroutines gone", func() bool { return runtime.NumGoroutine() < before+n/10 })
	for _, c := range conns {
		c.expectAlive()
	}
}

// BenchmarkFlush measures queueing a 150-byte frame and flushing it to a
// socket whose peer reads everything: plain, and over TLS (encryption and
// the ciphertext copy included).
func BenchmarkFlush(b *testing.B) {
	frame := wsframe.AppendFrame(nil, ws.OpText, bytes.Repeat([]byte{'m'}, 148))
	for _, secure := range []bool{false, true} {
		name := "ws"
		if secure {
			name = "wss"
		}
		b.Run(name, func(b *testing.B) {
			s := benchServer(b)
			p := newTLSPair(b)
			c := &conn{s: s, fd: p.fd}
			c.desc = netpoll.NewDesc(-1, drain{c})
			var peer io.Reader = p.raw
			if secure {
				c.tls, peer = p.t, p.client
			}
			go func() { _, _ = io.Copy(io.Discard, peer) }()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.push(frame, 0, false)
				for {
					empty, err := c.flush()
					if err != nil {
						b.Fatal(err)
					}
					if empty {
						break
					}
				}
			}
		})
	}
}
