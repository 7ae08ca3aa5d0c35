package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// viewCollector collects Metrics over a fixed view.
type viewCollector struct {
	m    *Metrics
	view []NodeStatus
}

func (c viewCollector) Describe(ch chan<- *prometheus.Desc) { c.m.Describe(ch) }
func (c viewCollector) Collect(ch chan<- prometheus.Metric) { c.m.Collect(ch, c.view) }

// TestMetrics pins the names, help texts, labels and values of the
// wsbridge_cluster_* metrics: dashboards and alerts depend on them.
func TestMetrics(t *testing.T) {
	a := self(ready("a", 12, 2))
	a.Subscriptions, a.MsgsInRate, a.MsgsOutRate, a.Rebalancing, a.Shed = 30, 1.5, 7, true, 4
	b := NodeStatus{ID: "b", State: NodeDraining, Connections: 8, Subscriptions: 5, MsgsInRate: 2, MsgsOutRate: 3}
	c := ready("c", 4, 0)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(viewCollector{NewMetrics(), []NodeStatus{a, b, c}}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, fmt.Sprintf("# %s %s %s", mf.GetName(), mf.GetType(), mf.GetHelp()))
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if mf.GetType().String() == "COUNTER" {
				v = m.GetCounter().GetValue()
			}
			got = append(got, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	want := []string{
		"# wsbridge_cluster_mean_connections GAUGE Mean connections per ready node, the rebalancing target.",
		"wsbridge_cluster_mean_connections{} 8",
		"# wsbridge_cluster_node_connections GAUGE Connections of each node, as last announced.",
		"wsbridge_cluster_node_connections{node=a} 12",
		"wsbridge_cluster_node_connections{node=b} 8",
		"wsbridge_cluster_node_connections{node=c} 4",
		"# wsbridge_cluster_node_messages_in_per_second GAUGE Client messages received per second by each node.",
		"wsbridge_cluster_node_messages_in_per_second{node=a} 1.5",
		"wsbridge_cluster_node_messages_in_per_second{node=b} 2",
		"wsbridge_cluster_node_messages_in_per_second{node=c} 0",
		"# wsbridge_cluster_node_messages_out_per_second GAUGE Messages queued to clients per second by each node.",
		"wsbridge_cluster_node_messages_out_per_second{node=a} 7",
		"wsbridge_cluster_node_messages_out_per_second{node=b} 3",
		"wsbridge_cluster_node_messages_out_per_second{node=c} 0",
		"# wsbridge_cluster_node_rebalancing GAUGE 1 while the node sheds clients.",
		"wsbridge_cluster_node_rebalancing{node=a} 1",
		"wsbridge_cluster_node_rebalancing{node=b} 0",
		"wsbridge_cluster_node_rebalancing{node=c} 0",
		"# wsbridge_cluster_node_state GAUGE 1 for each node's state: ready, draining or nats_down.",
		"wsbridge_cluster_node_state{node=a,state=ready} 1",
		"wsbridge_cluster_node_state{node=b,state=draining} 1",
		"wsbridge_cluster_node_state{node=c,state=ready} 1",
		"# wsbridge_cluster_node_subscriptions GAUGE Subscriptions of each node, as last announced.",
		"wsbridge_cluster_node_subscriptions{node=a} 30",
		"wsbridge_cluster_node_subscriptions{node=b} 5",
		"wsbridge_cluster_node_subscriptions{node=c} 0",
		"# wsbridge_cluster_nodes GAUGE Nodes in this node's view of the cluster, itself included.",
		"wsbridge_cluster_nodes{} 3",
		"# wsbridge_cluster_rebalance_closes_total COUNTER Clients this node closed with 1012 rebalance.",
		"wsbridge_cluster_rebalance_closes_total{} 4",
		"# wsbridge_cluster_rebalancing GAUGE 1 while this node sheds clients to even out the cluster.",
		"wsbridge_cluster_rebalancing{} 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
