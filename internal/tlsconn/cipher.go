package tlsconn

import "crypto/tls"

// PreferChaCha20 is a tls.Config.GetConfigForClient that makes crypto/tls
// choose ChaCha20-Poly1305 whenever the client offers it, for memory: a
// connection keeps its cipher state for life, and ChaCha20-Poly1305's is
// its 32-byte key per direction where AES-GCM's is 896 bytes (expanded
// encryption and decryption keys, the GHASH table), about 1.7 KiB per
// idle wss:// connection in all. On AES-NI hardware it costs about
// 100 ns more per small record and 1.3 µs more per 4 KiB one
// (BenchmarkSealRecord). Clients that offer no
// ChaCha20-Poly1305 keep AES-GCM, and under FIPS 140-3 mode crypto/tls
// allows AES-GCM only, whatever the offer says.
//
// crypto/tls has no server-side setting for this: from TLS 1.3 (and
// for 1.2 since Go 1.17) it picks AES-GCM when the first AES-GCM or
// ChaCha20 suite in the client's list is AES-GCM. PreferChaCha20 moves
// the client's ChaCha20-Poly1305 suites to the front of that list, in
// place: hello.CipherSuites is the parsed ClientHello's own slice, read
// after this callback (Go 1.26 handshake_server.go: clientHelloInfo,
// then readClientHello calls GetConfigForClient before choosing the
// suite). It changes what the server believes the client prefers, never
// which suites are allowed, and not the transcript, which hashes the
// message as received. TestPreferChaCha20 fails if a Go release copies
// the slice instead. It returns nil, nil: the configuration stays.
func PreferChaCha20(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	s := hello.CipherSuites
	k := 0 // s[:k] are ChaCha20-Poly1305 suites, in the client's order
	for i, id := range s {
		if !chaCha20[id] {
			continue
		}
		copy(s[k+1:i+1], s[k:i])
		s[k] = id
		k++
	}
	return nil, nil
}

var chaCha20 = map[uint16]bool{
	tls.TLS_CHACHA20_POLY1305_SHA256:                  true,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   true,
}
