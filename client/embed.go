// Package client holds the browser client for wsbridge: the bridge.js ES
// module, its TypeScript typings (bridge.d.ts) and a demo page
// (index.html). It owns only these static files; serving them, and the
// protocol they speak, belong to package bridge. docs/CLIENT.md is the
// guide. Everything here is read-only and safe for concurrent use.
package client

import "embed"

// FS holds bridge.js, bridge.d.ts and index.html at its root. The bridge
// serves index.html at / and bridge.js at /bridge.js; bridge.js must go out
// as text/javascript or browsers refuse to load it as a module. FS is
// read-only and safe for concurrent use.
//
//go:embed bridge.js bridge.d.ts index.html
var FS embed.FS
