package tlsconn

import (
	"crypto/fips140"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
)

func TestPreferChaCha20Order(t *testing.T) {
	in := []uint16{
		tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	want := []uint16{
		tls.TLS_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	}
	hello := &tls.ClientHelloInfo{CipherSuites: in}
	if cfg, err := PreferChaCha20(hello); cfg != nil || err != nil {
		t.Fatalf("PreferChaCha20 = %v, %v; want nil, nil", cfg, err)
	}
	if !slices.Equal(in, want) {
		t.Fatalf("suites = %x, want %x", in, want)
	}
}

// TestPreferChaCha20 negotiates with real handshakes: it is what fails if
// crypto/tls stops reading the suites from the slice the callback sees.
func TestPreferChaCha20(t *testing.T) {
	if fips140.Enabled() {
		t.Skip("FIPS 140-3 mode: crypto/tls allows AES-GCM only, whatever the client prefers")
	}
	aes12 := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	for _, tc := range []struct {
		name   string
		client func(*tls.Config)
		want   uint16
	}{
		{"tls13", func(*tls.Config) {}, tls.TLS_CHACHA20_POLY1305_SHA256},
		{"tls12", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{"tls12 without chacha20", func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, aes12 }, aes12[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := testTLSConfigs(t)
			tc.client(client)
			plain := handshake(t, server, client)
			server.GetConfigForClient = PreferChaCha20
			if got := handshake(t, server, client); got != tc.want {
				t.Fatalf("suite = %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(tc.want))
			}
			t.Logf("crypto/tls alone chose %s", tls.CipherSuiteName(plain))
		})
	}
}

// handshake runs one handshake over a pipe and returns the suite.
func handshake(t testing.TB, server, client *tls.Config) uint16 {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, server)
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	cli := tls.Client(cc, client)
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	// The server's session tickets follow its Finished: read them.
	go func() { _, _ = io.Copy(io.Discard, cli) }()
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return srv.ConnectionState().CipherSuite
}

// BenchmarkSealRecord is the CPU side of PreferChaCha20: one record of a
// small WebSocket frame sealed by a server tls.Conn, per suite.
func BenchmarkSealRecord(b *testing.B) {
	for _, tc := range []struct {
		name   string
		prefer bool
	}{{"aes-128-gcm", false}, {"chacha20-poly1305", true}} {
		for _, size := range []int{64, 512, 4096} {
			b.Run(tc.name+"/"+strconv.Itoa(size), func(b *testing.B) {
				server, client := testTLSConfigs(b)
				if tc.prefer {
					server.GetConfigForClient = PreferChaCha20
				}
				sc, cc := net.Pipe()
				defer sc.Close()
				defer cc.Close()
				srv := tls.Server(sc, server)
				done := make(chan error, 1)
				go func() { done <- srv.Handshake() }()
				if err := tls.Client(cc, client).Handshake(); err != nil {
					b.Fatal(err)
				}
				go func() { _, _ = io.Copy(io.Discard, cc) }()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := srv.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
