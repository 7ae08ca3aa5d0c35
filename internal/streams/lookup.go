package streams

import (
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// lookupTTL bounds how long a cached subject → stream answer is trusted
// when no advisory says it changed (advisories may be out of the
// bridge's permissions).
const lookupTTL = time.Minute

// maxCachedStreams bounds the cache; past it, the oldest half is dropped.
const maxCachedStreams = 4096

// lookupCache remembers which stream covers a subject pattern, so that
// starting a feed costs one stream info request, not a lookup by subject
// as well. Entries are dropped when a request answers no_stream and on
// JetStream's stream deleted and updated advisories. It is safe for
// concurrent use.
type lookupCache struct {
	mu      sync.Mutex
	streams map[string]cachedStream // by pattern
	sub     *nats.Subscription
}

type cachedStream struct {
	stream string
	at     time.Time
}

// watch subscribes to the advisories that invalidate entries. Without
// them (no permission, no connection) entries still expire.
func (c *lookupCache) watch(r *Streams) {
	c.streams = make(map[string]cachedStream)
	if r.js == nil {
		return
	}
	nc := r.js.Conn()
	if nc == nil {
		return
	}
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.*.*", func(m *nats.Msg) {
		// $JS.EVENT.ADVISORY.STREAM.<DELETED|UPDATED|…>.<stream>
		t := strings.Split(m.Subject, ".")
		if len(t) == 6 && (t[4] == "DELETED" || t[4] == "UPDATED") {
			c.forget(t[5])
		}
	})
	if err != nil {
		r.log.Debug("stream advisories", "err", err)
		return
	}
	c.sub = sub
}

func (c *lookupCache) stop() {
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
	}
}

func (c *lookupCache) get(pattern string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.streams[pattern]
	if !ok || time.Since(l.at) > lookupTTL {
		return "", false
	}
	return l.stream, true
}

func (c *lookupCache) put(pattern, stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) >= maxCachedStreams {
		cut := time.Now().Add(-lookupTTL / 2)
		for p, l := range c.streams {
			if l.at.Before(cut) || len(c.streams) >= maxCachedStreams {
				delete(c.streams, p)
			}
		}
	}
	c.streams[pattern] = cachedStream{stream: stream, at: time.Now()}
}

// forget drops every pattern answered with stream.
func (c *lookupCache) forget(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, l := range c.streams {
		if l.stream == stream {
			delete(c.streams, p)
		}
	}
}
