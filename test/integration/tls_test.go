package integration

import (
	"context"
	"crypto/fips140"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// tlsBridgeWith is tlsBridge with more configuration.
func tlsBridgeWith(t *testing.T, ns *natsserver.Server, mutate func(*bridge.Config)) (*testBridge, *x509.Certificate) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := writeSelfSigned(t, certFile, keyFile)
	r, err := bridge.NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) {
		c.TLS = r.TLSConfig(true)
		if mutate != nil {
			mutate(c)
		}
	})
	return b, cert
}

// TestTLSCompression: permessage-deflate over wss://, both directions,
// with messages larger than a TLS record.
func TestTLSCompression(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, cert := tlsBridgeWith(t, ns, func(c *bridge.Config) {
		c.Compression = true
		c.CompressionMin = 64
		c.MaxPayload = 256 << 10
	})
	svc := testutil.NATSClient(t, ns)
	ctx, cancel := ctxWait()
	defer cancel()
	wc, resp, err := websocket.Dial(ctx, "wss://"+b.Addr+"/ws", &websocket.DialOptions{
		HTTPClient:           trusting(cert),
		CompressionMode:      websocket.CompressionNoContextTakeover,
		CompressionThreshold: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	wc.SetReadLimit(8 << 20)
	t.Cleanup(func() { wc.CloseNow() })
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q: not negotiated over TLS", ext)
	}
	c := &wsClient{t: t, c: wc}
	c.expect("hello", "")
	c.subscribe("s", "tz.out", "")
	big := `{"text":"` + strings.Repeat("all work and no play over TLS ", 3000) + `"}` // ~90 KB
	for _, payload := range []string{big, `{"small":1}`} {
		if err := svc.Publish("tz.out", []byte(payload)); err != nil {
			t.Fatal(err)
		}
		if f := c.expect("msg", ""); string(f.Data) != payload {
			t.Fatalf("got %.60s…, want %.60s…", f.Data, payload)
		}
	}
	got := make(chan *nats.Msg, 1)
	if _, err := svc.ChanSubscribe("tz.in", got); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.send(`{"op":"pub","subject":"tz.in","data":` + big + `,"id":"p"}`)
	c.expect("ok", "p")
	select {
	case m := <-got:
		if string(m.Data) != big {
			t.Fatal("compressed publish did not arrive intact")
		}
	case <-time.After(wait):
		t.Fatal("nothing published")
	}
}

// TestTLSRawMode: /ws/raw over wss://.
func TestTLSRawMode(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, cert := tlsBridgeWith(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	got := make(chan *nats.Msg, 1)
	if _, err := svc.ChanSubscribe("traw.in", got); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+b.Addr+"/ws/raw?sub=traw.out&pub=traw.in", &websocket.DialOptions{HTTPClient: trusting(cert)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	testutil.Eventually(t, "raw subscription live", func() bool { return natsSubsOf(t, ns, "traw.out") == 1 })
	if err := svc.Publish("traw.out", []byte("to the browser")); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(p) != "to the browser" {
		t.Fatalf("read %v %q %v", typ, p, err)
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Data) != "\x00\x01\x02\xff" {
			t.Fatalf("published %q", m.Data)
		}
	case <-time.After(wait):
		t.Fatal("nothing published")
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close handshake over TLS: %v", err)
	}
}

// TestTLSSlowConsumer: a wss:// client that stops reading is closed as a
// slow consumer once its bounded queue overflows, while a healthy wss://
// client on the same subject keeps receiving; reading again, the slow one
// finds its frames, then the 1008.
func TestTLSSlowConsumer(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, cert := tlsBridgeWith(t, ns, func(c *bridge.Config) { c.WriteBuffer = 64 << 10 })
	svc := testutil.NATSClient(t, ns)
	healthy := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(cert)})
	healthy.subscribe("s", "tslow", "")
	// The slow client's small receive buffer makes it push back early.
	tr := trusting(cert).Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}).DialContext
	slow := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	slow.subscribe("s", "tslow", "")
	payload := []byte(`"` + strings.Repeat("x", 4000) + `"`)
	closed := func() bool { return b.Stats().Closes[int(websocket.StatusPolicyViolation)] > 0 }
	sent := 0
	for round := 0; round < 1000 && !closed(); round++ {
		// A round fits the healthy client's queue; it reads it all.
		for range 8 {
			if err := svc.Publish("tslow", payload); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		for range 8 {
			if f := healthy.expect("msg", ""); string(f.Data) != string(payload) {
				t.Fatalf("healthy client got %.40q", f.Data)
			}
		}
	}
	testutil.Eventually(t, "the slow wss:// client closed 1008", closed)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	got := 0
	for {
		_, _, err := slow.c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("slow client ended with %v after %d messages, want 1008", err, got)
			}
			break
		}
		got++
	}
	if got == 0 || got >= sent {
		t.Fatalf("slow client read %d of %d messages before its 1008", got, sent)
	}
	healthy.send(`{"op":"ping","id":"still"}`)
	healthy.expect("pong", "still")
}

// TestTLSCipherSuites: with BRIDGE_TLS_PREFER_CHACHA20 (the default) a Go
// client that lists AES-GCM first still gets ChaCha20-Poly1305; without
// it, crypto/tls's own choice (AES-GCM where AES has hardware support).
// Messages flow both ways under each.
func TestTLSCipherSuites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefer bool
	}{{"prefer chacha20", true}, {"crypto/tls choice", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testutil.StartNATS(t, false, nil)
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			cert := writeSelfSigned(t, certFile, keyFile)
			r, err := bridge.NewCertReloader(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.TLS = r.TLSConfig(tc.prefer) })
			ctx, cancel := ctxWait()
			defer cancel()
			wc, resp, err := websocket.Dial(ctx, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(cert)})
			if err != nil {
				t.Fatal(err)
			}
			wc.SetReadLimit(1 << 20)
			t.Cleanup(func() { wc.CloseNow() })
			if resp.TLS == nil {
				t.Fatal("upgrade response without TLS state")
			}
			suite := resp.TLS.CipherSuite
			if tc.prefer && suite != tls.TLS_CHACHA20_POLY1305_SHA256 && !fips140.Enabled() {
				t.Fatalf("negotiated %s (prefer ChaCha20: %v)", tls.CipherSuiteName(suite), tc.prefer)
			}
			t.Logf("negotiated %s", tls.CipherSuiteName(suite))

			svc := testutil.NATSClient(t, ns)
			in := make(chan *nats.Msg, 1)
			if _, err := svc.ChanSubscribe("tc.in", in); err != nil {
				t.Fatal(err)
			}
			if err := svc.Flush(); err != nil {
				t.Fatal(err)
			}
			c := &wsClient{t: t, c: wc}
			c.expect("hello", "")
			c.subscribe("s", "tc.out", "")
			payload := `"` + strings.Repeat("x", 40<<10) + `"` // several records
			if err := svc.Publish("tc.out", []byte(payload)); err != nil {
				t.Fatal(err)
			}
			if f := c.expect("msg", ""); string(f.Data) != payload {
				t.Fatalf("client got %d bytes, want %d", len(f.Data), len(payload))
			}
			c.send(`{"op":"pub","subject":"tc.in","data":` + payload + `,"id":"p"}`)
			c.expect("ok", "p")
			select {
			case m := <-in:
				if string(m.Data) != payload {
					t.Fatalf("service got %d bytes, want %d", len(m.Data), len(payload))
				}
			case <-time.After(wait):
				t.Fatal("the service got nothing")
			}
		})
	}
}
