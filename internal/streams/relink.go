package streams

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// Relinked restarts every running feed's consumer after the NATS
// connection came back (on the same server or another). An ordered
// consumer recovers by itself, but a recovery attempt started while the
// link was dead waits out its request timeout even when the link comes
// back meanwhile; a fresh consumer from the feed's position does not.
// Members see nothing: the feed drops what it has delivered already. It
// never blocks.
func (r *Streams) Relinked() {
	r.mu.Lock()
	feeds := make([]*feed, 0, len(r.feeds))
	for _, f := range r.feeds {
		select {
		case <-f.ready:
			if f.err == nil {
				feeds = append(feeds, f)
			}
		default: // still starting: its start runs on the new link
		}
	}
	r.mu.Unlock()
	for _, f := range feeds {
		if !r.spawn(f.relink) {
			return
		}
	}
}

// relink replaces f's consumer with one starting after f.last. If that
// fails the old one stays, recovering on its own.
func (f *feed) relink() {
	r := f.r
	f.ccMu.Lock()
	defer f.ccMu.Unlock()
	f.mu.Lock()
	from, stopped := f.last+1, f.stopped
	f.mu.Unlock()
	if stopped || r.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
	defer cancel()
	cons, err := r.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{f.subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		r.log.Debug("stream feed: relink failed; the old consumer recovers on its own", "stream", f.stream, "subject", f.subject, "err", err)
		return
	}
	cc, err := cons.Consume(f.deliver, jetstream.PullHeartbeat(feedHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		r.log.Debug("stream feed", "stream", f.stream, "subject", f.subject, "err", err)
	}))
	if err != nil {
		if info := cons.CachedInfo(); info != nil {
			r.deleteConsumer(f.stream, info.Name)
		}
		return
	}
	oldCC, oldCons := f.cc, f.cons
	f.cons, f.cc = cons, cc
	oldCC.Stop()
	if info := oldCons.CachedInfo(); info != nil {
		r.deleteConsumer(f.stream, info.Name)
	}
}
