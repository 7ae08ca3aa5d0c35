// Package client holds the browser client for wsbridge: the bridge.js ES
// module, its TypeScript typings (bridge.d.ts), its npm manifest
// (package.json), a demo page (index.html) and its icon, and the handler
// that serves them. It owns only these static files; the protocol they
// speak belongs to package bridge. docs/CLIENT.md is the guide.
// Everything here is read-only and safe for concurrent use.
package client

import (
	"embed"
	"encoding/json"
)

// FS holds bridge.js, bridge.d.ts, package.json, index.html and
// favicon.ico at its root. It is read-only and safe for concurrent use.
//
//go:embed bridge.js bridge.d.ts package.json index.html favicon.ico
var FS embed.FS

// Version returns the client's release as client/package.json states it
// (bridge.js exports the same as VERSION), or "" if the manifest cannot be
// read, which the package's tests rule out.
func Version() string {
	b, err := FS.ReadFile("package.json")
	if err != nil {
		return ""
	}
	var m struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	return m.Version
}
