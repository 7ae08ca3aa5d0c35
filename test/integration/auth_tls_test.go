package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// its key to certFile and keyFile and returns the certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wsbridge test " + serial.String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// tlsBridge serves wss:// with a self-signed certificate; it returns the
// bridge, the reloader and the certificate's files.
func tlsBridge(t *testing.T, ns *natsserver.Server) (*testBridge, *bridge.CertReloader, *x509.Certificate, [2]string) {
	t.Helper()
	dir := t.TempDir()
	files := [2]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	cert := writeSelfSigned(t, files[0], files[1])
	r, err := bridge.NewCertReloader(files[0], files[1])
	if err != nil {
		t.Fatal(err)
	}
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.TLS = r.TLSConfig(true) })
	return b, r, cert, files
}

// trusting is an HTTP client that trusts only certs.
func trusting(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestTLSRoundTrip(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, _, cert, _ := tlsBridge(t, ns)
	svc := testutil.NATSClient(t, ns)
	c := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(cert)})
	c.subscribe("s", "tls.out", "")
	in := make(chan *natsMsg, 4096)
	if _, err := svc.ChanSubscribe("tls.in", in); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	recvIn := func(t *testing.T) *natsMsg {
		t.Helper()
		select {
		case m := <-in:
			return m
		case <-time.After(wait):
			t.Fatal("the service got nothing")
			return nil
		}
	}

	big := make([]byte, 100<<10) // several TLS records
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	t.Run("100 KB to the client", func(t *testing.T) {
		if err := svc.Publish("tls.out", big); err != nil {
			t.Fatal(err)
		}
		f := c.expect("msg", "")
		if f.B64 == nil {
			t.Fatalf("want b64 payload, got %.200s", f.raw)
		}
		if got, err := base64.StdEncoding.DecodeString(*f.B64); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("payload differs (%d bytes, %v)", len(got), err)
		}
	})
	t.Run("100 KB from the client", func(t *testing.T) {
		c.send(map[string]any{"op": "pub", "id": "big", "subject": "tls.in", "b64": base64.StdEncoding.EncodeToString(big)})
		c.expect("ok", "big")
		if m := recvIn(t); !bytes.Equal(m.Data, big) {
			t.Fatalf("service got %d bytes, want %d", len(m.Data), len(big))
		}
	})
	const n = 2000
	t.Run("many small to the client", func(t *testing.T) {
		for i := range n {
			if err := svc.Publish("tls.out", []byte(itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			if f := c.expect("msg", ""); string(f.Data) != itoa(i) {
				t.Fatalf("message %d: got %s", i, f.raw)
			}
		}
	})
	t.Run("many small from the client", func(t *testing.T) {
		for i := range n {
			c.send(`{"op":"pub","subject":"tls.in","data":` + itoa(i) + `}`)
		}
		for i := range n {
			if m := recvIn(t); string(m.Data) != itoa(i) {
				t.Fatalf("message %d: got %q", i, m.Data)
			}
		}
		c.send(`{"op":"ping","id":"end"}`)
		c.expect("pong", "end")
	})
	t.Run("both directions at once", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			for i := range n {
				if err := svc.Publish("tls.out", []byte(itoa(i))); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for i := range n {
			c.send(`{"op":"pub","subject":"tls.in","data":` + itoa(i) + `}`)
		}
		for i := range n {
			if f := c.expect("msg", ""); string(f.Data) != itoa(i) {
				t.Fatalf("message %d: got %s", i, f.raw)
			}
		}
		for i := range n {
			if m := recvIn(t); string(m.Data) != itoa(i) {
				t.Fatalf("message %d: got %q", i, m.Data)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("clean close", func(t *testing.T) {
		if err := c.c.Close(websocket.StatusNormalClosure, "done"); err != nil {
			t.Fatalf("close handshake over TLS: %v", err)
		}
	})
}

func TestTLSHealthz(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, _, cert, _ := tlsBridge(t, ns)
	resp, err := trusting(cert).Get("https://" + b.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over TLS = %d", resp.StatusCode)
	}
	t.Run("plain HTTP is not served", func(t *testing.T) {
		_, err := (&http.Client{Timeout: wait}).Get("http://" + b.Addr + "/healthz")
		if err == nil {
			t.Fatal("plain http:// worked on a TLS listener")
		}
	})
}

func TestTLSCertReload(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, r, oldCert, files := tlsBridge(t, ns)
	served := func() *x509.Certificate {
		t.Helper()
		tc, err := tls.Dial("tcp", b.Addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		return tc.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(oldCert) {
		t.Fatal("not serving the initial certificate")
	}
	open := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(oldCert)})

	newCert := writeSelfSigned(t, files[0], files[1])
	if !served().Equal(oldCert) {
		t.Fatal("the new certificate was served before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if !served().Equal(newCert) {
		t.Fatal("Reload did not switch certificates")
	}
	mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(newCert)})
	open.send(`{"op":"ping","id":"old"}`)
	open.expect("pong", "old") // established connections are unaffected

	t.Run("a broken pair keeps the old certificate", func(t *testing.T) {
		if err := os.WriteFile(files[1], []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.Reload(); err == nil {
			t.Fatal("Reload accepted a broken key")
		}
		if !served().Equal(newCert) {
			t.Fatal("a failed Reload changed the certificate")
		}
	})
}
