package bridge

import "time"

// natsOp is a NATS subscription to make or end, for the flusher.
type natsOp struct {
	in        *interest
	subscribe bool // else unsubscribe
}

// maxNATSOps bounds subscription changes waiting for the flusher (NATS
// stuck, clients churning); beyond it new interests are refused.
const maxNATSOps = 1 << 16

// opsFull reports whether no new interest may be queued. Callers hold imu.
func (s *Server) opsFull() bool {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return len(s.ops) >= maxNATSOps
}

// natsOp queues op for the flusher, in order. Callers hold imu, so a
// subscription's unsubscribe always follows its subscribe.
func (s *Server) natsOp(op *natsOp) {
	s.flushMu.Lock()
	s.ops = append(s.ops, op)
	s.flushMu.Unlock()
	s.kickFlusher()
}

// awaitFlush defers a sub's ok until the NATS server has confirmed the
// SUB, so that an ok always means "live".
func (s *Server) awaitFlush(sb *sub) {
	s.flushMu.Lock()
	s.flushWait = append(s.flushWait, sb)
	s.flushMu.Unlock()
	s.kickFlusher()
}

func (s *Server) kickFlusher() {
	select {
	case s.flushKick <- struct{}{}:
	default:
	}
}

// flusher owns the node's NATS subscriptions: it makes and ends them in
// the order clients asked, then confirms new ones in batches, one round
// trip covering every SUB written before it. It is the only goroutine
// that calls nats.go for core interest, so a stuck NATS connection stalls
// it and nothing else; while NATS is unreachable it keeps retrying and
// the subscriptions go live when it comes back.
func (s *Server) flusher() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.flushKick:
		}
		for {
			s.flushMu.Lock()
			ops, batch := s.ops, s.flushWait
			s.ops, s.flushWait = nil, nil
			s.flushMu.Unlock()
			if len(ops) == 0 && len(batch) == 0 {
				break
			}
			for _, op := range ops {
				if op.subscribe {
					op.in.subscribeNATS()
				} else {
					op.in.unsubscribeNATS()
				}
			}
			if len(batch) == 0 {
				continue
			}
			for s.nc.FlushTimeout(5*time.Second) != nil {
				select {
				case <-s.done:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
			for _, sb := range batch {
				if sb.in.err.Load() == nil {
					sb.in.ready.Store(true)
				}
				sb.in.liveOnce.Do(func() { close(sb.in.live) })
				sb.c.mu.Lock()
				sb.c.acks = append(sb.c.acks, sb)
				sb.c.mu.Unlock()
				s.poller.Schedule(sb.c.desc, evAcks)
			}
		}
	}
}
