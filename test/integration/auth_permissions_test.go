package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"wsbridge/internal/testutil"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// echoService answers requests on subject with their data.
func echoService(t *testing.T, ns *natsserver.Server, subject string) {
	t.Helper()
	svc := testutil.NATSClient(t, ns)
	if _, err := svc.Subscribe(subject, func(m *natsMsg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// opCase is one command and the answer it must get: "ok", "reply" or an
// err code.
type opCase struct {
	name, cmd, want string
}

func runOps(t *testing.T, c *wsClient, cases []opCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "c" + itoa(i)
			cmd := strings.Replace(tc.cmd, `"id":"?"`, `"id":"`+id+`"`, 1)
			c.send(cmd)
			f := c.recv()
			switch {
			case f.Ref != id:
				t.Fatalf("got %s, want ref %s", f.raw, id)
			case tc.want == "ok" || tc.want == "reply":
				if f.Op != tc.want {
					t.Fatalf("%s: got %s, want %s", cmd, f.raw, tc.want)
				}
			case f.Op != "err" || f.Code != tc.want:
				t.Fatalf("%s: got %s, want err %s", cmd, f.raw, tc.want)
			}
		})
	}
}

func TestPermissionMatrix(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	echoService(t, ns, "svc.echo")
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"orders.eu.>", "svc.>", "public.*"}, Deny: []string{"orders.eu.secret"}},
		Sub: permDir{Allow: []string{"orders.eu.>", "news.*", "jobs.>"}, Deny: []string{"orders.eu.secret.>"}},
	}))
	runOps(t, c, []opCase{
		{"pub allowed", `{"op":"pub","id":"?","subject":"orders.eu.new","data":1}`, "ok"},
		{"pub deeper allowed", `{"op":"pub","id":"?","subject":"orders.eu.new.x","data":1}`, "ok"},
		{"pub other region", `{"op":"pub","id":"?","subject":"orders.us.new","data":1}`, "permission_denied"},
		{"pub prefix only", `{"op":"pub","id":"?","subject":"orders.eu","data":1}`, "permission_denied"},
		{"pub denied", `{"op":"pub","id":"?","subject":"orders.eu.secret","data":1}`, "permission_denied"},
		{"pub star", `{"op":"pub","id":"?","subject":"public.x","data":1}`, "ok"},
		{"pub star too deep", `{"op":"pub","id":"?","subject":"public.x.y","data":1}`, "permission_denied"},
		{"req allowed", `{"op":"req","id":"?","subject":"svc.echo","data":1}`, "reply"},
		{"req allowed no responders", `{"op":"req","id":"?","subject":"public.nobody","data":1}`, "no_responders"},
		{"req refused", `{"op":"req","id":"?","subject":"orders.us.x","data":1}`, "permission_denied"},
		{"req denied", `{"op":"req","id":"?","subject":"orders.eu.secret","data":1}`, "permission_denied"},
		{"sub allowed", `{"op":"sub","id":"?","subject":"orders.eu.new.>"}`, "ok"},
		{"sub overlapping deny gt", `{"op":"sub","id":"?","subject":"orders.eu.>"}`, "permission_denied"},
		{"sub allowed star", `{"op":"sub","id":"?","subject":"orders.eu.*"}`, "ok"},
		{"sub wider", `{"op":"sub","id":"?","subject":"orders.>"}`, "permission_denied"},
		{"sub denied", `{"op":"sub","id":"?","subject":"orders.eu.secret.x"}`, "permission_denied"},
		{"sub overlapping deny", `{"op":"sub","id":"?","subject":"orders.eu.secret.*"}`, "permission_denied"},
		{"sub news star", `{"op":"sub","id":"?","subject":"news.*"}`, "ok"},
		{"sub news gt", `{"op":"sub","id":"?","subject":"news.>"}`, "permission_denied"},
		{"sub not subscribable pub subject", `{"op":"sub","id":"?","subject":"svc.echo"}`, "permission_denied"},
		{"queue sub allowed", `{"op":"sub","id":"?","subject":"jobs.work","queue":"workers"}`, "ok"},
		{"queue sub refused", `{"op":"sub","id":"?","subject":"orders.us.x","queue":"workers"}`, "permission_denied"},
		{"sub all", `{"op":"sub","id":"?","subject":">"}`, "permission_denied"},
	})
}

func TestPermissionRawHandshake(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	tok := userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"in.>"}, Deny: []string{"in.secret"}},
		Sub: permDir{Allow: []string{"out.>"}},
	})
	svc := testutil.NATSClient(t, ns)
	cases := []struct {
		name, query string
		want        int
	}{
		{"sub and pub allowed", "sub=out.x&pub=in.x", http.StatusSwitchingProtocols},
		{"sub wildcard allowed", "sub=out.>", http.StatusSwitchingProtocols},
		{"queue allowed", "sub=out.x&queue=q", http.StatusSwitchingProtocols},
		{"sub refused", "sub=in.x", http.StatusForbidden},
		{"sub wider refused", "sub=>", http.StatusForbidden},
		{"pub refused", "pub=out.x", http.StatusForbidden},
		{"pub denied", "sub=out.x&pub=in.secret", http.StatusForbidden},
		{"reserved sub", "sub=$SYS.>", http.StatusForbidden},
		{"reserved pub", "pub=_INBOX.x", http.StatusForbidden},
		{"invalid sub", "sub=out..x", http.StatusBadRequest},
		{"wildcard pub", "pub=in.*", http.StatusBadRequest},
		{"neither", "", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for _, kv := range strings.Split(tc.query, "&") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					q.Set(k, v)
				}
			}
			q.Set("token", tok)
			u := "ws://" + b.Addr + "/ws/raw?" + q.Encode()
			if tc.want == http.StatusSwitchingProtocols {
				c, resp, body := handshake(t, u, nil)
				if c == nil {
					t.Fatalf("refused %d %q", resp.StatusCode, body)
				}
				// Every accepted case subscribes: prove it is live.
				sub := q.Get("sub")
				testutil.Eventually(t, "the raw subscription", func() bool { return natsSubsOf(t, ns, sub) > 0 })
				if err := svc.Publish("out.x", []byte("raw")); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := ctxWait()
				defer cancel()
				if _, p, err := c.Read(ctx); err != nil || string(p) != "raw" {
					t.Fatalf("raw delivery: %q %v", p, err)
				}
				return
			}
			expectRefused(t, u, nil, tc.want, tok)
		})
	}
	t.Run("allowed raw connection carries messages", func(t *testing.T) {
		in := make(chan *natsMsg, 1)
		if _, err := svc.ChanSubscribe("in.x", in); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		c, _, _ := handshake(t, "ws://"+b.Addr+"/ws/raw?pub=in.x&token="+tok, nil)
		if c == nil {
			t.Fatal("refused")
		}
		ctx, cancel := ctxWait()
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-in:
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
		case <-ctx.Done():
			t.Fatal("nothing published")
		}
	})
}

func TestPermissionDenyWins(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{">"}, Deny: []string{"secret.>"}},
		Sub: permDir{Allow: []string{">"}, Deny: []string{"secret.>"}},
	}))
	runOps(t, c, []opCase{
		{"pub open", `{"op":"pub","id":"?","subject":"open.x","data":1}`, "ok"},
		{"pub denied", `{"op":"pub","id":"?","subject":"secret.x","data":1}`, "permission_denied"},
		{"req denied", `{"op":"req","id":"?","subject":"secret.x","data":1}`, "permission_denied"},
		{"sub open", `{"op":"sub","id":"?","subject":"open.>"}`, "ok"},
		{"sub denied", `{"op":"sub","id":"?","subject":"secret.x"}`, "permission_denied"},
		{"sub gt overlaps deny", `{"op":"sub","id":"?","subject":">"}`, "permission_denied"},
		{"sub star overlaps deny", `{"op":"sub","id":"?","subject":"*.x"}`, "permission_denied"},
		{"queue sub denied", `{"op":"sub","id":"?","subject":"secret.q","queue":"g"}`, "permission_denied"},
	})
}

func TestPermissionMissingAllowListAllowsNothing(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	ops := []opCase{
		{"pub", `{"op":"pub","id":"?","subject":"a.b","data":1}`, "permission_denied"},
		{"req", `{"op":"req","id":"?","subject":"a.b","data":1}`, "permission_denied"},
		{"sub", `{"op":"sub","id":"?","subject":"a.b"}`, "permission_denied"},
		{"queue sub", `{"op":"sub","id":"?","subject":"a.b","queue":"q"}`, "permission_denied"},
	}
	for _, tc := range []struct {
		name string
		p    *perms
	}{
		{"no nats claim", nil},
		{"deny only", &perms{Pub: permDir{Deny: []string{"x"}}, Sub: permDir{Deny: []string{"x"}}}},
		{"empty directions", &perms{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runOps(t, connectAs(t, b.Addr, userToken(t, "alice", tc.p)), ops)
		})
	}
}

func TestPermissionNarrowerAllowRefusesWider(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"orders.eu.>"}},
		Sub: permDir{Allow: []string{"orders.eu.>"}},
	}))
	runOps(t, c, []opCase{
		{"sub orders.>", `{"op":"sub","id":"?","subject":"orders.>"}`, "permission_denied"},
		{"sub orders.*", `{"op":"sub","id":"?","subject":"orders.*"}`, "permission_denied"},
		{"sub orders.*.x", `{"op":"sub","id":"?","subject":"orders.*.x"}`, "permission_denied"},
		{"sub orders.eu", `{"op":"sub","id":"?","subject":"orders.eu"}`, "permission_denied"},
		{"pub orders.x", `{"op":"pub","id":"?","subject":"orders.x","data":1}`, "permission_denied"},
		{"sub orders.eu.>", `{"op":"sub","id":"?","subject":"orders.eu.>"}`, "ok"},
		{"pub orders.eu.x", `{"op":"pub","id":"?","subject":"orders.eu.x","data":1}`, "ok"},
	})
}

func TestPermissionSubSubstitution(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	p := &perms{Pub: permDir{Allow: []string{"users.{sub}.>"}}, Sub: permDir{Allow: []string{"users.{sub}.>"}}}
	c := connectAs(t, b.Addr, userToken(t, "alice", p))
	runOps(t, c, []opCase{
		{"pub own", `{"op":"pub","id":"?","subject":"users.alice.x","data":1}`, "ok"},
		{"pub other", `{"op":"pub","id":"?","subject":"users.bob.x","data":1}`, "permission_denied"},
		{"pub literal placeholder", `{"op":"pub","id":"?","subject":"users.{sub}.x","data":1}`, "permission_denied"},
		{"sub own", `{"op":"sub","id":"?","subject":"users.alice.>"}`, "ok"},
		{"sub other", `{"op":"sub","id":"?","subject":"users.bob.x"}`, "permission_denied"},
		{"sub everyone", `{"op":"sub","id":"?","subject":"users.*.x"}`, "permission_denied"},
		{"sub all users", `{"op":"sub","id":"?","subject":"users.>"}`, "permission_denied"},
	})
}

func TestPermissionSubInjectionRefused(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	p := &perms{Pub: permDir{Allow: []string{"users.{sub}.>"}}, Sub: permDir{Allow: []string{"users.{sub}.>"}}}
	for _, sub := range []string{"a.b", "*", ">", "a b", "", "a\tb", "x.>"} {
		t.Run(strings.NewReplacer(" ", "_space_", "\t", "_tab_").Replace(sub)+"_", func(t *testing.T) {
			tok := userToken(t, sub, p)
			expectRefused(t, "ws://"+b.Addr+"/ws", bearer(tok), http.StatusUnauthorized, tok)
		})
	}
}

func TestPermissionReservedSubjects(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	runOps(t, c, []opCase{
		{"pub $SYS", `{"op":"pub","id":"?","subject":"$SYS.REQ.SERVER.PING","data":1}`, "permission_denied"},
		{"pub $JS", `{"op":"pub","id":"?","subject":"$JS.API.INFO","data":1}`, "permission_denied"},
		{"pub _INBOX", `{"op":"pub","id":"?","subject":"_INBOX.abc.def","data":1}`, "permission_denied"},
		{"req $JS", `{"op":"req","id":"?","subject":"$JS.API.INFO","data":1}`, "permission_denied"},
		{"req _INBOX", `{"op":"req","id":"?","subject":"_INBOX.abc","data":1}`, "permission_denied"},
		{"sub $SYS", `{"op":"sub","id":"?","subject":"$SYS.>"}`, "permission_denied"},
		{"sub $KV", `{"op":"sub","id":"?","subject":"$KV.bucket.*"}`, "permission_denied"},
		{"sub _INBOX", `{"op":"sub","id":"?","subject":"_INBOX.>"}`, "permission_denied"},
		{"queue sub _INBOX", `{"op":"sub","id":"?","subject":"_INBOX.x","queue":"q"}`, "permission_denied"},
		{"pub ordinary", `{"op":"pub","id":"?","subject":"ordinary","data":1}`, "ok"},
	})
}

func TestPermissionWildcardSnoopersSeeNoRepliesOrSystemTraffic(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	echoService(t, ns, "svc.echo")
	b := authBridge(t, ns, hsConfig(), nil, nil)
	svc := testutil.NATSClient(t, ns)
	snoop := connectAs(t, b.Addr, userToken(t, "mallory", allowAll()))
	snoop.subscribe("all", ">", "")
	snoop2 := connectAs(t, b.Addr, userToken(t, "mallory", allowAll()))
	snoop2.subscribe("all", "*.>", "")

	victim := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	victim.send(`{"op":"req","id":"r","subject":"svc.echo","data":"secret-reply"}`)
	if f := victim.expect("reply", "r"); string(f.Data) != `"secret-reply"` {
		t.Fatalf("got %s", f.raw)
	}
	for _, s := range []string{"$SYS.ACCOUNT.x", "$JS.API.INFO", "$KV.bucket.key", "_INBOX.abc.def"} {
		if err := svc.Publish(s, []byte(`"hidden"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Publish("visible.end", []byte(`"end"`)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*wsClient{">": snoop, "*.>": snoop2} {
		for {
			f := s.expect("msg", "")
			if strings.HasPrefix(f.Subject, "_INBOX") || strings.HasPrefix(f.Subject, "$") {
				t.Fatalf("%s snooper got reserved traffic: %s", name, f.raw)
			}
			if f.Subject == "svc.echo" {
				continue // the request itself is ordinary traffic
			}
			if f.Subject != "visible.end" {
				t.Fatalf("%s snooper got %s", name, f.raw)
			}
			break
		}
	}
}
