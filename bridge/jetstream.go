package bridge

import "github.com/nats-io/nats.go"

// jsSub is the state of a JetStream subscription (sub with "from").
type jsSub struct{}

// jsSubscribe starts a JetStream subscription for cmd, whose id, subject,
// queue, uniqueness and the subscription limit are already checked.
func (c *conn) jsSubscribe(cmd *command) *opError {
	return errf(codeBadRequest, "JetStream subscriptions are not available yet")
}

// jsUnsubscribe ends a JetStream subscription.
func (s *Server) jsUnsubscribe(sb *sub) {}

// jsPublish publishes m through JetStream and answers ref with the stream
// and sequence.
func (c *conn) jsPublish(ref string, m *nats.Msg) *opError {
	return errf(codeBadRequest, "acked publishes are not available yet")
}
