package streams

import (
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// window is a feed's most recent messages, bounded by count and bytes. It
// holds every match with a sequence in (from, feed.last], so a
// subscription whose cursor is at or above from can be served from it
// alone. It is guarded by its feed's mu.
type window struct {
	maxN, maxBytes int
	ents           []winEntry // ents[head:] in stream order
	head           int
	bytes          int
	from           uint64
}

// winEntry is one message, its body encoded once (wire.AppendBody) and
// owned by the window.
type winEntry struct {
	seq     uint64
	subject string
	body    []byte
	size    int // of the message's data, for Member.Compress
}

// winOverhead is what an entry costs besides its body and subject.
const winOverhead = 64

// add appends the message with sequence seq, evicting the oldest entries
// beyond the bounds. A window of no messages only moves from.
func (w *window) add(seq uint64, m jetstream.Msg) {
	if w.maxN <= 0 {
		w.from = seq
		return
	}
	subject := m.Subject()
	if wire.Reserved(subject) {
		return // never delivered to clients: nothing to keep
	}
	e := winEntry{seq: seq, subject: subject, size: len(m.Data())}
	e.body = wire.AppendBody(nil, m.Data(), m.Headers(), "")
	w.ents = append(w.ents, e)
	w.bytes += e.cost()
	for w.len() > w.maxN || (w.maxBytes > 0 && w.bytes > w.maxBytes && w.len() > 0) {
		old := &w.ents[w.head]
		w.bytes -= old.cost()
		w.from = old.seq
		*old = winEntry{}
		w.head++
	}
	if w.head > len(w.ents)/2 && w.head > 64 {
		// Compact so the slice does not creep: amortised O(1) per add.
		n := copy(w.ents, w.ents[w.head:])
		clear(w.ents[n:])
		w.ents, w.head = w.ents[:n], 0
	}
}

func (e *winEntry) cost() int { return len(e.body) + len(e.subject) + winOverhead }

func (w *window) len() int { return len(w.ents) - w.head }

// covers reports whether every match after cursor is in the window or
// yet to come to the feed.
func (w *window) covers(cursor uint64) bool { return cursor >= w.from }

// after returns the index in ents of the first entry above cursor.
func (w *window) after(cursor uint64) int {
	live := w.ents[w.head:]
	return w.head + sort.Search(len(live), func(i int) bool { return live[i].seq > cursor })
}

// lastSeq is the sequence of the newest entry, 0 if none.
func (w *window) lastSeq() uint64 {
	if w.len() == 0 {
		return 0
	}
	return w.ents[len(w.ents)-1].seq
}

// serve sends js the window's messages above js.cursor, as many as fit
// in half its write buffer, and makes it live if that was the rest. It
// reports whether js is done catching up (live, or gone). f.mu is held.
func (f *feed) serve(js *Sub) bool {
	n, open := js.m.Queued()
	if !open {
		js.gone = true
		return true
	}
	w := &f.win
	room := f.r.cfg.WriteBuffer/2 - n
	buf := js.frames[:0]
	frames, tooBig, i := 0, 0, w.after(js.cursor)
	for ; i < len(w.ents); i++ {
		e := &w.ents[i]
		start := len(buf)
		buf = appendFrame(buf, js, e.subject, e.body, e.seq, e.size)
		if f.r.tooBig(buf[start:]) {
			buf = buf[:start]
			tooBig++
			continue
		}
		if frames > 0 && len(buf) > room {
			buf = buf[:start]
			break
		}
		frames++
	}
	if tooBig > 0 {
		f.r.cfg.Delivered(0, 0, tooBig)
	}
	if frames > 0 {
		// Whole frames in stream order; from memory, so untimed.
		if !js.m.Enqueue(buf, 0) {
			f.r.cfg.Delivered(0, 0, frames)
			js.gone = true
			return true
		}
		f.r.cfg.Delivered(frames, len(buf), 0)
	}
	if i > w.head && i-1 < len(w.ents) {
		js.cursor = max(js.cursor, w.ents[i-1].seq)
	}
	if cap(buf) <= 64<<10 {
		js.frames = buf[:0]
	} else {
		js.frames = nil // do not keep a large scratch per catching-up sub
	}
	if i < len(w.ents) {
		return false
	}
	js.last = max(js.cursor, f.last)
	f.add(js)
	return true
}

// appendFrame appends js's msg frame for one message, compressed if the
// client wants it so. History is per client: compressed per client.
func appendFrame(dst []byte, js *Sub, subject string, body []byte, seq uint64, size int) []byte {
	start := len(dst)
	dst = wire.AppendMsgFrame(dst, js.sid, subject, body, seq)
	if js.m.Compress(size) {
		fr := dst[start:]
		z := wsframe.AppendDeflated(nil, fr)
		dst = append(dst[:start], z...)
	}
	return dst
}
