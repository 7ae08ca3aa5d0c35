package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://bridge.test"+path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerFiles(t *testing.T) {
	h := Handler(Config{})
	cases := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>wsbridge</title>"},
		{"/index.html", "text/html; charset=utf-8", "<title>wsbridge</title>"},
		{"/bridge.js", "text/javascript; charset=utf-8", "export function connect"},
		{"/bridge.d.ts", "text/plain; charset=utf-8", "export interface ConnectOptions"},
		{"/favicon.ico", "image/x-icon", "\x00\x00\x01\x00"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			w := serve(t, h, http.MethodGet, tc.path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			etag := w.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if w := serve(t, h, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d, want 304", w.Code)
			}
			if w := serve(t, h, http.MethodHead, tc.path, nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Errorf("HEAD: status %d, %d body bytes", w.Code, w.Body.Len())
			}
		})
	}
	for _, path := range []string{"/nope", "/package.json", "/embed.go"} {
		if w := serve(t, h, http.MethodGet, path, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, w.Code)
		}
	}
	if w := serve(t, h, http.MethodPost, "/bridge.js", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST: status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestHandlerCORS(t *testing.T) {
	allowed := map[string]bool{"https://app.example.com": true, "null": true}
	policy := func(origin, host string, tls bool) bool { return allowed[origin] }
	cases := []struct {
		name   string
		cfg    Config
		method string
		path   string
		hdr    map[string]string
		code   int
		want   map[string]string // "" means absent
	}{
		{"allowed origin", Config{AllowOrigin: policy}, "GET", "/bridge.js",
			map[string]string{"Origin": "https://app.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Vary": "Origin"}},
		{"typings too", Config{AllowOrigin: policy}, "GET", "/bridge.d.ts",
			map[string]string{"Origin": "https://app.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"}},
		{"other origin", Config{AllowOrigin: policy}, "GET", "/bridge.js",
			map[string]string{"Origin": "https://evil.example"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"}},
		{"no origin", Config{AllowOrigin: policy}, "GET", "/bridge.js", nil, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"}},
		{"page is not CORS", Config{AllowOrigin: policy}, "GET", "/",
			map[string]string{"Origin": "https://app.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "", "Vary": ""}},
		{"nil policy: own origin", Config{}, "GET", "/bridge.js",
			map[string]string{"Origin": "http://bridge.test"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "http://bridge.test"}},
		{"nil policy: other origin", Config{}, "GET", "/bridge.js",
			map[string]string{"Origin": "https://app.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight", Config{AllowOrigin: policy}, "OPTIONS", "/bridge.js",
			map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-trace"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, HEAD",
				"Access-Control-Allow-Headers": "x-trace", "Access-Control-Max-Age": "7200"}},
		{"preflight for POST", Config{AllowOrigin: policy}, "OPTIONS", "/bridge.js",
			map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""}},
		{"preflight from other origin", Config{AllowOrigin: policy}, "OPTIONS", "/bridge.js",
			map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""}},
		{"plain OPTIONS", Config{AllowOrigin: policy}, "OPTIONS", "/", nil, 204,
			map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(t, Handler(tc.cfg), tc.method, tc.path, tc.hdr)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			for k, v := range tc.want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHandlerNATSURL(t *testing.T) {
	page := func(cfg Config) string {
		return serve(t, Handler(cfg), http.MethodGet, "/", nil).Body.String()
	}
	if !strings.Contains(page(Config{}), natsURLMeta) {
		t.Fatalf("index.html lacks %s", natsURLMeta)
	}
	got := page(Config{NATSURL: `nats://127.0.0.1:4222"><script>`})
	if want := `<meta name="wsbridge-nats-url" content="nats://127.0.0.1:4222&#34;&gt;&lt;script&gt;">`; !strings.Contains(got, want) {
		t.Fatalf("page lacks the escaped address %s", want)
	}
}

// TestPackageManifest: package.json is npm-ready and its version is the
// one bridge.js exports, so the binary, the module it serves and the npm
// package carry one version.
func TestPackageManifest(t *testing.T) {
	b, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Type    string `json:"type"`
		Main    string `json:"main"`
		Types   string `json:"types"`
		Exports map[string]json.RawMessage
		Files   []string `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	if m.Name == "" || m.Type != "module" {
		t.Errorf("name %q, type %q: want a name and type module", m.Name, m.Type)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(m.Version) {
		t.Errorf("version %q is not semver", m.Version)
	}
	if Version() != m.Version {
		t.Errorf("Version() = %q, package.json says %q", Version(), m.Version)
	}
	js, err := os.ReadFile("bridge.js")
	if err != nil {
		t.Fatal(err)
	}
	if want := "export const VERSION = '" + m.Version + "';"; !strings.Contains(string(js), want) {
		t.Errorf("bridge.js lacks %s", want)
	}
	var root struct{ Types, Default string }
	if err := json.Unmarshal(m.Exports["."], &root); err != nil {
		t.Fatalf(`exports["."]: %v`, err)
	}
	if root.Types != "./bridge.d.ts" || root.Default != "./bridge.js" || m.Main != "./bridge.js" || m.Types != "./bridge.d.ts" {
		t.Errorf("entry points: exports %+v, main %q, types %q", root, m.Main, m.Types)
	}
	for _, f := range m.Files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("files lists %s: %v", f, err)
		}
	}
}
