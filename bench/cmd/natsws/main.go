// Command natsws runs a nats-server in its own process for the benchmarks:
// a plain client port and, when -ws is set, nats-server's native WebSocket
// listener, over TLS when -tls-cert and -tls-key are set. It serves until
// SIGINT or SIGTERM.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	port := flag.Int("port", 4222, "client port on 127.0.0.1")
	wsPort := flag.Int("ws", 0, "WebSocket port on 127.0.0.1 (0: no WebSocket listener)")
	certFile := flag.String("tls-cert", "", "PEM certificate: the WebSocket listener serves wss://")
	keyFile := flag.String("tls-key", "", "PEM key for -tls-cert")
	flag.Parse()
	opts := &server.Options{
		Host:   "127.0.0.1",
		Port:   *port,
		NoSigs: true,
		// Large enough for the 19,000-connection scenarios.
		MaxConn: 1 << 20,
	}
	if *wsPort != 0 {
		opts.Websocket = server.WebsocketOpts{Host: "127.0.0.1", Port: *wsPort, NoTLS: true}
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "natsws:", err)
				os.Exit(1)
			}
			opts.Websocket.NoTLS = false
			opts.Websocket.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsws:", err)
		os.Exit(1)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsws: server did not start")
		os.Exit(1)
	}
	fmt.Printf("natsws ready: nats://127.0.0.1:%d ws=%d version=%s\n", *port, *wsPort, server.VERSION)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ns.Shutdown()
	ns.WaitForShutdown()
}
