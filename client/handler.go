package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"net/http"
	"strings"
	"time"
)

// Config is what Handler serves with. The zero value serves every file,
// same-origin only, with a generic `nats pub` hint.
type Config struct {
	// AllowOrigin reports whether a page from origin may load /bridge.js
	// and /bridge.d.ts cross-origin, given the request's Host header and
	// whether it arrived over TLS: the bridge's origin policy
	// (auth.OriginPolicy.Allow, BRIDGE_ALLOWED_ORIGINS), so the pages that
	// may open /ws may also import the client. Nil allows the page's own
	// origin only.
	AllowOrigin func(origin, host string, tls bool) bool

	// NATSURL is the NATS address the demo page tells visitors to try
	// `nats -s <NATSURL> pub …` on. Every visitor of / sees it, so set it
	// for a development server (the embedded one), not for an internal
	// production cluster. Empty: the hint names BRIDGE_NATS_URL instead.
	NATSURL string
}

// natsURLMeta is the tag in index.html whose content Handler fills with
// Config.NATSURL.
const natsURLMeta = `<meta name="wsbridge-nats-url" content="">`

// file is one served path, prepared once.
type file struct {
	body  []byte
	ctype string
	etag  string
	cors  bool // importable cross-origin: the module and its typings
}

// Handler serves the demo page at /, the module and its typings at
// /bridge.js and /bridge.d.ts (with CORS for the origins cfg allows) and
// the page's icon at /favicon.ico, each with an explicit content type
// (browsers refuse a module served as anything but JavaScript) and an
// ETag. Other paths get 404, methods other than GET, HEAD and OPTIONS 405.
// It is safe for concurrent use.
func Handler(cfg Config) http.Handler {
	allow := cfg.AllowOrigin
	if allow == nil {
		allow = sameOrigin
	}
	page := prepare("index.html", "text/html; charset=utf-8", false)
	if page.body != nil {
		filled := `<meta name="wsbridge-nats-url" content="` + html.EscapeString(cfg.NATSURL) + `">`
		page.body = bytes.Replace(page.body, []byte(natsURLMeta), []byte(filled), 1)
		page.etag = etag(page.body)
	}
	files := map[string]file{
		"/":            page,
		"/index.html":  page,
		"/bridge.js":   prepare("bridge.js", "text/javascript; charset=utf-8", true),
		"/bridge.d.ts": prepare("bridge.d.ts", "text/plain; charset=utf-8", true),
		"/favicon.ico": prepare("favicon.ico", "image/x-icon", false),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		allowed := false
		if f.cors {
			// Caches must keep one answer per Origin: only some carry
			// Access-Control-Allow-Origin.
			h.Add("Vary", "Origin")
			if o := r.Header.Get("Origin"); o != "" && allow(o, r.Host, r.TLS != nil) {
				h.Set("Access-Control-Allow-Origin", o)
				allowed = true
			}
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			preflight(w, r, allowed)
			return
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if f.body == nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", f.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache") // revalidate: the ETag makes that cheap
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// preflight answers OPTIONS. A CORS preflight from an allowed origin
// for GET or HEAD gets the methods and the headers it asked for (the
// files carry no credentials, so any request header is harmless); anything
// else gets 204 without CORS headers, which browsers treat as a refusal.
func preflight(w http.ResponseWriter, r *http.Request, allowed bool) {
	h := w.Header()
	h.Set("Allow", "GET, HEAD, OPTIONS")
	method := r.Header.Get("Access-Control-Request-Method")
	if method != "" {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	if !allowed || (method != http.MethodGet && method != http.MethodHead) {
		h.Del("Access-Control-Allow-Origin")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	if hdrs := r.Header.Get("Access-Control-Request-Headers"); hdrs != "" {
		h.Set("Access-Control-Allow-Headers", hdrs)
	}
	h.Set("Access-Control-Max-Age", "7200") // Chromium's cap
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin is the policy without AllowOrigin: the page's own origin.
func sameOrigin(origin, host string, tls bool) bool {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	return strings.EqualFold(origin, scheme+host)
}

func prepare(name, ctype string, cors bool) file {
	b, err := FS.ReadFile(name)
	if err != nil {
		return file{ctype: ctype, cors: cors} // answered 500; the tests rule it out
	}
	return file{body: b, ctype: ctype, etag: etag(b), cors: cors}
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}
