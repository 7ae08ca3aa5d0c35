package client

import (
	"net/http"
	"strconv"
)

// Handler serves the demo page at / and the module and its typings at
// /bridge.js and /bridge.d.ts, with explicit content types (browsers refuse
// a module served as anything but JavaScript). Other paths get 404.
func Handler() http.Handler {
	files := map[string]struct{ name, ctype string }{
		"/":            {"index.html", "text/html; charset=utf-8"},
		"/index.html":  {"index.html", "text/html; charset=utf-8"},
		"/bridge.js":   {"bridge.js", "text/javascript; charset=utf-8"},
		"/bridge.d.ts": {"bridge.d.ts", "text/plain; charset=utf-8"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b, err := FS.ReadFile(f.name)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", f.ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodGet {
			_, _ = w.Write(b)
		}
	})
}
