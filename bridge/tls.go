package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"

	"wsbridge/internal/tlsconn"
)

// TLS connections run on the same epoll path as plain ones, over the
// non-blocking transport of internal/tlsconn under each *tls.Conn. What
// stays here is the bridge's own TLS policy and certificates.

// CertReloader serves a certificate and key from files and re-reads them
// on Reload, so certificates rotate without a restart.
type CertReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewCertReloader loads the pair once; it fails if they do not load.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the files; on error the previous certificate stays.
func (r *CertReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("bridge: loading TLS certificate %s: %w", r.certFile, err)
	}
	r.cert.Store(&c)
	return nil
}

// TLSConfig returns a server configuration (TLS 1.2 and later) that always
// presents the latest loaded certificate. Dynamic record sizing is off:
// flush writes a chunk's records in one write(2), so small first records
// would only add overhead. With preferChaCha20, connections use
// ChaCha20-Poly1305 whenever the client offers it, which every browser
// does: its cipher state is about 1.7 KiB smaller per connection than
// AES-GCM's (see tlsconn.PreferChaCha20).
func (r *CertReloader) TLSConfig(preferChaCha20 bool) *tls.Config {
	var prefer func(*tls.ClientHelloInfo) (*tls.Config, error)
	if preferChaCha20 {
		prefer = tlsconn.PreferChaCha20
	}
	return &tls.Config{
		GetConfigForClient: prefer,
		MinVersion:         tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
		NextProtos:                  []string{"http/1.1"},
		DynamicRecordSizingDisabled: true,
	}
}

// errNoTransport reports a TLS connection the bridge did not wrap.
var errNoTransport = errors.New("bridge: TLS connection without the bridge's transport")
