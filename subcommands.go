package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/kelseyhightower/envconfig"
)

const usageHeader = `wsbridge: a WebSocket edge for NATS.

Usage:
  wsbridge              serve, configured by the environment variables below
  wsbridge version      print the version and build information
  wsbridge healthcheck  GET /healthz on BRIDGE_LISTEN; exit 0 on 200, else 1 (for Docker HEALTHCHECK)
  wsbridge token [flags]
                        mint a development JWT for BRIDGE_JWT_SECRET (or -key for a public key) and
                        print it with a ws://…/ws?token= URL; wsbridge token -h lists the flags
  wsbridge -h           print this help

Exit status: 0, or 1 on a failure at run time (a port in use, NATS or its
storage failing), or 2 on an invalid setting or argument, which is reported
naming the variable before anything is started.

Environment variables:

`

const usageFormat = `{{range .}}{{usage_key .}}
    {{usage_description .}}{{if usage_default .}} (default {{usage_default .}}){{end}}
{{end}}`

// printHelp is wsbridge -h: the subcommands, then every variable of
// config. The tags hold the full names, hence no prefix (see config).
func printHelp(w io.Writer) error {
	fmt.Fprint(w, usageHeader)
	return envconfig.Usagef("", &config{}, w, usageFormat)
}

// printVersion is wsbridge version.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wsbridge %s\n", version)
	fmt.Fprintf(w, "go: %s\n", runtime.Version())
	fmt.Fprintf(w, "platform: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	for _, key := range []string{"vcs.revision", "vcs.time", "vcs.modified"} {
		if v := vcsSetting(key); v != "" {
			fmt.Fprintf(w, "%s: %s\n", key, v)
		}
	}
}

// vcsSetting is a vcs.* setting the go command stamped into the binary,
// or "" (go run, -buildvcs=false, or a build without .git).
func vcsSetting(key string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// healthcheck is wsbridge healthcheck, for Docker's HEALTHCHECK in an
// image without curl: it asks this node's own listener for /healthz.
// Every failure is exit status 1 (Docker reserves 2).
func healthcheck(ctx context.Context, stdout io.Writer, lookupEnv func(string) (string, bool)) error {
	url, err := healthURL(lookupEnv)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	c := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, // it talks to itself
			// On loopback the certificate, issued for the public name,
			// cannot match; there is no one in between to verify.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: GET %s: %s\n", url, resp.Status)
	return nil
}

// healthURL is /healthz on the address BRIDGE_LISTEN binds, reached over
// loopback when it binds every interface, and https with BRIDGE_TLS_CERT.
func healthURL(lookupEnv func(string) (string, bool)) (string, error) {
	listen, ok := lookupEnv("BRIDGE_LISTEN")
	if !ok {
		f, _ := reflect.TypeFor[config]().FieldByName("Listen")
		listen = f.Tag.Get("default")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("BRIDGE_LISTEN: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cert, _ := lookupEnv("BRIDGE_TLS_CERT"); cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/healthz", nil
}
