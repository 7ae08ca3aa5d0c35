package cluster

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the wsbridge_cluster_* metrics. They hold only
// descriptors, so they exist before the Membership they describe and are
// safe for concurrent use; the values come from a view at scrape time.
type Metrics struct {
	nodes, mean, rebalancing, shed                 *prometheus.Desc
	conns, subs, msgsIn, msgsOut, state, nodeRebal *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsbridge_"+name, help, labels, nil)
}

// NewMetrics returns the descriptors of the wsbridge_cluster_* metrics.
func NewMetrics() *Metrics {
	node := []string{"node"}
	return &Metrics{
		nodes:       desc("cluster_nodes", "Nodes in this node's view of the cluster, itself included."),
		mean:        desc("cluster_mean_connections", "Mean connections per ready node, the rebalancing target."),
		rebalancing: desc("cluster_rebalancing", "1 while this node sheds clients to even out the cluster."),
		shed:        desc("cluster_rebalance_closes_total", "Clients this node closed with 1012 rebalance."),
		conns:       desc("cluster_node_connections", "Connections of each node, as last announced.", node...),
		subs:        desc("cluster_node_subscriptions", "Subscriptions of each node, as last announced.", node...),
		msgsIn:      desc("cluster_node_messages_in_per_second", "Client messages received per second by each node.", node...),
		msgsOut:     desc("cluster_node_messages_out_per_second", "Messages queued to clients per second by each node.", node...),
		state:       desc("cluster_node_state", "1 for each node's state: ready, draining or nats_down.", "node", "state"),
		nodeRebal:   desc("cluster_node_rebalancing", "1 while the node sheds clients.", node...),
	}
}

// Describe sends every descriptor, as prometheus.Collector's Describe
// does.
func (d *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.nodes, d.mean, d.rebalancing, d.shed, d.conns, d.subs, d.msgsIn, d.msgsOut, d.state, d.nodeRebal} {
		ch <- x
	}
}

// Collect sends the metrics of view, as View returns it: this node's own
// rebalancing gauge and shed counter come from its Self entry.
func (d *Metrics) Collect(ch chan<- prometheus.Metric, view []NodeStatus) {
	g := func(dd *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(dd, prometheus.GaugeValue, v, labels...)
	}
	g(d.nodes, float64(len(view)))
	mean, _, _ := meanOfReady(view)
	g(d.mean, mean)
	for _, n := range view {
		if n.Self {
			g(d.rebalancing, boolGauge(n.Rebalancing))
			ch <- prometheus.MustNewConstMetric(d.shed, prometheus.CounterValue, float64(n.Shed))
		}
	}
	for _, n := range view {
		g(d.conns, float64(n.Connections), n.ID)
		g(d.subs, float64(n.Subscriptions), n.ID)
		g(d.msgsIn, n.MsgsInRate, n.ID)
		g(d.msgsOut, n.MsgsOutRate, n.ID)
		g(d.state, 1, n.ID, string(n.State))
		g(d.nodeRebal, boolGauge(n.Rebalancing), n.ID)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
