package auth

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testTime = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// refMatch is the reference matcher: the pattern translated to a regexp.
func refMatch(pattern, subject string) bool {
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		switch t {
		case "*":
			toks[i] = `[^.]+`
		case ">":
			toks[i] = `.+`
		default:
			toks[i] = regexp.QuoteMeta(t)
		}
	}
	return regexp.MustCompile(`^` + strings.Join(toks, `\.`) + `$`).MatchString(subject)
}

// FuzzPermissions checks CanPublish against the regexp reference and that
// CanSubscribe never grants a pattern matching a subject CanPublish refuses
// (the same lists are used for both directions).
func FuzzPermissions(f *testing.F) {
	f.Add("orders.>", "orders.secret", "orders.*", "alice")
	f.Add("orders.eu.>", "", "orders.>", "alice")
	f.Add("*.*", "", "orders.*", "")
	f.Add(">", "orders.*", "orders.eu", "")
	f.Add(">", "", "$SYS.>", "")
	f.Add(">", "", "_INBOX.x", "")
	f.Add("users.{sub}.>", "users.*.admin", "users.bob.admin", "bob")
	f.Add("a.>,b.*", "a.x,*.y", "*.y", "")
	f.Add("a..b", "", "a", "a.b")
	f.Fuzz(func(t *testing.T, allow, deny, p, sub string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		d := direction{Allow: split(allow), Deny: split(deny)}
		id, err := newIdentity(sub, testTime, &permissions{Pub: d, Sub: d})
		if err != nil {
			return
		}
		pub, subOK := id.CanPublish(p), id.CanSubscribe(p)
		literal := validSubject(p, false)
		if !validSubject(p, true) && (pub || subOK) {
			t.Fatalf("invalid %q allowed", p)
		}
		if literal && pub != subOK {
			t.Fatalf("literal %q: CanPublish %v != CanSubscribe %v", p, pub, subOK)
		}
		if literal && !reserved(p) {
			want := false
			for _, a := range id.pubAllow {
				want = want || refMatch(strings.Join(a.subject, "."), p)
			}
			for _, dn := range id.pubDeny {
				want = want && !refMatch(strings.Join(dn.subject, "."), p)
			}
			if pub != want {
				t.Fatalf("CanPublish(%q) = %v, reference %v", p, pub, want)
			}
		}
		if !subOK {
			return
		}
		// Every instance of a granted pattern must be publishable. Fill
		// wildcards with each token the lists mention, so denied subjects
		// are among the instances.
		fills := []string{"zz"}
		for _, l := range [][]entry{id.pubAllow, id.pubDeny} {
			for _, e := range l {
				for _, tok := range e.subject {
					if tok != "*" && tok != ">" {
						fills = append(fills, tok)
					}
				}
			}
		}
		for _, fill := range fills {
			for _, gt := range []string{fill, fill + ".zz", "zz." + fill} {
				s := strings.ReplaceAll(p, "*", fill)
				if strings.HasSuffix(s, ">") {
					s = s[:len(s)-1] + gt
				}
				if validSubject(s, false) && !reserved(s) && !id.CanPublish(s) {
					t.Fatalf("CanSubscribe(%q) granted but instance %q refused", p, s)
				}
			}
		}
	})
}

// FuzzQueuePermissions parses subscribe lists with queue entries and checks
// CanSubscribeQueue on literal subjects and queues against a reference built
// from the regexp matcher and the four queue rules; that every parsed allow
// entry permits its own literal instances unless a deny entry matches them;
// that CanSubscribe is CanSubscribeQueue with no queue; and that publish lists
// refuse every entry with a queue. Lists are separated by ','.
func FuzzQueuePermissions(f *testing.F) {
	for _, tt := range queueTests {
		f.Add(strings.Join(tt.allow, ","), strings.Join(tt.deny, ","), tt.pattern, tt.queue, "")
	}
	for _, tt := range entryTests {
		f.Add(tt.entry, "", "a.b", "q", tt.sub)
	}
	f.Add("users.{sub}.> q.{sub}", "", "users.bob.x", "q.bob", "bob")
	f.Add("svc.>  web", "", "svc.a", "web", "")
	f.Add("svc.> ", " web", "svc.a", "", "")
	f.Add("a*", "b> q", "a*", "q*", "")
	f.Fuzz(func(t *testing.T, allow, deny, subject, queue, sub string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		d := direction{Allow: split(allow), Deny: split(deny)}
		if _, err := newIdentity(sub, testTime, &permissions{Pub: d}); err == nil {
			for _, e := range append(d.Allow, d.Deny...) {
				if strings.Contains(e, " ") {
					t.Fatalf("publish entry %q with a queue accepted", e)
				}
			}
		}
		id, err := newIdentity(sub, testTime, &permissions{Sub: d})
		if err != nil {
			if err != errInvalidPermissions && err != errInvalidSubject {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// ref applies the documented rules with the regexp matcher.
		matches := func(e entry, s, q string) bool {
			if !refMatch(strings.Join(e.subject, "."), s) {
				return false
			}
			return e.queue == nil || q != "" && refMatch(strings.Join(e.queue, "."), q)
		}
		ref := func(s, q string) bool {
			ok := false
			for _, a := range id.subAllow {
				ok = ok || matches(a, s, q)
			}
			for _, dn := range id.subDeny {
				ok = ok && !matches(dn, s, q)
			}
			return ok
		}
		check := func(s, q string) {
			got := id.CanSubscribeQueue(s, q)
			if q == "" && got != id.CanSubscribe(s) {
				t.Fatalf("CanSubscribe(%q) != CanSubscribeQueue(%q, \"\")", s, s)
			}
			if !validSubject(s, false) || reserved(s) || q != "" && !validSubject(q, false) {
				if got && !validSubject(s, true) {
					t.Fatalf("invalid subject %q allowed", s)
				}
				if got && q != "" && !validSubject(q, false) {
					t.Fatalf("invalid queue %q allowed", q)
				}
				return
			}
			if want := ref(s, q); got != want {
				t.Fatalf("CanSubscribeQueue(%q, %q) = %v, reference %v", s, q, got, want)
			}
		}
		check(subject, queue)
		check(subject, "")
		// Every allow entry admits its own instances unless denied.
		literal := func(p pattern) string {
			return strings.ReplaceAll(strings.ReplaceAll(strings.Join(p, "."), "*", "zz"), ">", "zz.zz")
		}
		for _, a := range id.subAllow {
			s, q := literal(a.subject), ""
			if a.queue != nil {
				q = literal(a.queue)
			}
			check(s, q)
			if !reserved(s) && !id.CanSubscribeQueue(s, q) {
				for _, dn := range id.subDeny {
					if matches(dn, s, q) {
						return
					}
				}
				t.Fatalf("allow entry %q refuses its instance %q queue %q", a, s, q)
			}
		}
	})
}

// FuzzVerify checks that arbitrary tokens never panic and only ever yield
// one of the client reasons.
func FuzzVerify(f *testing.F) {
	k := testKeys()
	now := time.Now()
	claims := func(edit jwt.MapClaims) jwt.MapClaims { return claimsAt(edit) }
	f.Add(sign(f, jwt.SigningMethodHS256, k.secret, "", claims(nil)))
	f.Add(sign(f, jwt.SigningMethodHS256, k.secret, "", claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})))
	f.Add(sign(f, jwt.SigningMethodHS256, k.secret, "", claims(jwt.MapClaims{"exp": nil})))
	f.Add(sign(f, jwt.SigningMethodHS256, k.secret, "", claims(jwt.MapClaims{"sub": "a.b", "nats": map[string]any{"pub": map[string]any{"allow": []string{"{sub}"}}}})))
	f.Add(sign(f, jwt.SigningMethodHS256, k.other, "", claims(nil)))
	f.Add(sign(f, jwt.SigningMethodRS256, k.rsa, "r", claims(nil)))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec256, "e", claims(nil)))
	f.Add(sign(f, jwt.SigningMethodEdDSA, k.ed, "", claims(nil)))
	f.Add(unsigned(f, `{"alg":"none"}`, claims(nil)))
	f.Add("not a token")
	f.Add("a.b.c")
	f.Add("")
	hmac := newVerifier(f, Config{Mode: ModeJWT, JWTSecret: string(k.secret), Issuer: testIssuer, Audience: testAudience})
	set := newVerifier(f, Config{Mode: ModeJWT, JWKSFile: writeFile(f, "jwks.json", jwks(f,
		jwkOf(f, "r", &k.rsa.PublicKey), jwkOf(f, "e", &k.ec256.PublicKey), jwkOf(f, "h", k.secret)))})
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range []*Verifier{hmac, set} {
			id, err := v.Verify(token)
			if err != nil {
				if id != nil {
					t.Fatal("identity returned with an error")
				}
				checkReason(t, err, token)
				continue
			}
			if id.Expires().IsZero() {
				t.Fatal("jwt identity without expiry")
			}
			id.CanPublish(id.Subject())
			id.CanSubscribe(id.Subject())
		}
	})
}

// FuzzOriginPolicy checks that parsing never panics and that an origin is
// always allowed on its own host.
func FuzzOriginPolicy(f *testing.F) {
	for _, s := range []string{"https://a.com", "http://[::1]:8080", "https://*.example.com:8443", "null", "*", "ws://x", "https://A.com:0443"} {
		f.Add(s, "a.com", true)
	}
	f.Fuzz(func(t *testing.T, origin, host string, tls bool) {
		p, err := NewOriginPolicy([]string{origin})
		if err == nil && !strings.Contains(origin, "*") && !p.Allow(origin, "", false) {
			t.Fatalf("listed origin %q refused", origin)
		}
		empty, _ := NewOriginPolicy(nil)
		if empty.Allow(origin, host, tls) && origin != "" {
			scheme, hostport, _ := strings.Cut(origin, "://")
			o, ok := parseOrigin(scheme, hostport)
			self := map[bool]string{false: "http", true: "https"}[tls]
			h, hok := parseOrigin(self, host)
			if !ok || !hok || o != h {
				t.Fatalf("Allow(%q, %q, %v) without a list", origin, host, tls)
			}
		}
	})
}

// FuzzHostPolicy checks that parsing never panics, that a listed entry is
// allowed as a Host header in any letter case (and on any port when listed
// without one), and that an allowed Host names the listed host and port.
func FuzzHostPolicy(f *testing.F) {
	for i, e := range hostEntryTests {
		f.Add(e.entry, hostAllowTests[i%len(hostAllowTests)].host)
	}
	for i, h := range hostAllowTests {
		f.Add(hostAllowList[i%len(hostAllowList)], h.host)
	}
	f.Fuzz(func(t *testing.T, entry, host string) {
		var none *HostPolicy
		if !none.Allow(host) {
			t.Fatal("nil policy refused a host")
		}
		p, err := NewHostPolicy([]string{entry})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "auth: invalid public host ") {
				t.Fatalf("error %q does not name the entry", err)
			}
			return
		}
		e, detail := parseHostPort(strings.TrimSpace(entry))
		if detail != "" {
			t.Fatalf("entry %q accepted but does not parse: %s", entry, detail)
		}
		listed := strings.TrimSpace(entry)
		for _, h := range []string{listed, strings.ToUpper(listed), strings.ToLower(listed)} {
			if !p.Allow(h) {
				t.Fatalf("listed %q refused as %q", entry, h)
			}
		}
		if e.port == "" && !p.Allow(listed+":8080") {
			t.Fatalf("%q listed without a port refused on 8080", entry)
		}
		if p.Allow(host) {
			h, detail := parseHostPort(host)
			if detail != "" || h.host != e.host || e.port != "" && h.port != e.port {
				t.Fatalf("policy %q allows %q (%v, %q)", entry, host, h, detail)
			}
		}
	})
}
