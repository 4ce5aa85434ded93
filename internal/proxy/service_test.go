package proxy

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

func TestServiceSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"no upstream", "  match: {host: a.example}\n", "svc.yaml:5:3: spec.upstream: missing"},
		{"bad scheme", "  upstream: ftp://x\n", "scheme must be http or https"},
		{"userinfo", "  upstream: https://u:p@x\n", "user information"},
		{"query", "  upstream: https://x/?a=1\n", "no query"},
		{"bad prefix", "  upstream: https://x\n  match: {path_prefix: svc}\n", "spec.match.path_prefix"},
		{"intercept without host", "  upstream: https://x\n  intercept: true\n", "interception needs match.host"},
		{"both injections", "  upstream: https://x\n  credential: {name: a}\n  token: {ttl: 5m}\n", "not both"},
		{"bad inject", "  upstream: https://x\n  credential: {name: a, inject: cookie}\n", "spec.credential.inject"},
		{"template without value", "  upstream: https://x\n  credential: {name: a, inject: header, template: \"token x\"}\n", "{value}"},
		{"query without param", "  upstream: https://x\n  credential: {name: a, inject: query}\n", "spec.credential.query"},
		{"long token", "  upstream: https://x\n  token: {ttl: 2h}\n", "spec.token.ttl"},
		{"bad timeout", "  upstream: https://x\n  timeouts: {response: soon}\n", "spec.timeouts.response"},
		{"unknown field", "  upstream: https://x\n  upstraem: y\n", "upstraem"},
		{"missing ca file", "  upstream: https://x\n  tls: {ca_file: /nonexistent/ca.pem}\n", "spec.tls.ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "apiVersion: writ.dev/v1\nkind: Service\nmetadata: {name: svc}\nspec:\n" + tc.spec
			docs, err := resource.Parse("svc.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = StoredSpec(docs[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTableRouting(t *testing.T) {
	a := service(t, "a", "http://127.0.0.1:1", "  match: {host: api.example}\n")
	b := service(t, "b", "http://127.0.0.1:1", "  match: {host: \"api.example:8443\", path_prefix: /b/deeper/}\n")
	c := service(t, "c", "http://127.0.0.1:1", "  match: {path_prefix: /b/}\n")
	tab, err := NewTable([]*Service{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, port, want string }{
		{"api.example", "443", "a"}, {"API.example.", "80", "a"}, {"api.example", "8443", "b"}, {"other", "80", ""},
	} {
		s := tab.ByHost(tc.host, tc.port)
		if (s == nil && tc.want != "") || (s != nil && s.Name != tc.want) {
			t.Errorf("ByHost(%s, %s) = %v, want %s", tc.host, tc.port, s, tc.want)
		}
	}
	for _, tc := range []struct{ path, want, rest string }{
		{"/b/deeper/x", "b", "/x"}, {"/b/x/y", "c", "/x/y"}, {"/b", "c", "/"}, {"/svc/a/q", "a", "/q"}, {"/nothing", "", ""},
	} {
		s, rest := tab.ByPath(tc.path)
		if (s == nil) != (tc.want == "") || (s != nil && (s.Name != tc.want || rest != tc.rest)) {
			t.Errorf("ByPath(%s) = %v %q, want %s %q", tc.path, s, rest, tc.want, tc.rest)
		}
	}
	dup := service(t, "d", "http://127.0.0.1:1", "  match: {host: api.example, path_prefix: /b/}\n")
	if _, err := NewTable([]*Service{a, c, dup}); err == nil || !strings.Contains(err.Error(), "also") {
		t.Errorf("conflicting services: %v", err)
	}
}

func FuzzServiceSpec(f *testing.F) {
	f.Add("  upstream: https://x\n  match: {host: \"a:1\", path_prefix: /p/}\n  credential: {name: a, inject: header, header: X-K, template: \"t {value}\"}\n")
	f.Add("  upstream: http://[::1]:80/base\n  token: {audience: b, scopes: [r], ttl: 1m}\n  timeouts: {connect: 1s}\n")
	f.Fuzz(func(t *testing.T, spec string) {
		src := "apiVersion: writ.dev/v1\nkind: Service\nmetadata: {name: svc}\nspec:\n" + spec
		docs, err := resource.Parse("svc.yaml", []byte(src))
		if err != nil || len(docs) != 1 {
			return
		}
		b, err := StoredSpec(docs[0])
		if err != nil {
			return
		}
		if _, err := CompileService(storeResource("svc", b)); err != nil {
			t.Fatalf("a spec that validates does not compile from its stored form: %v", err)
		}
	})
}

// FuzzProxyRequest feeds raw requests from outside to the proxy: it must
// answer every one without panicking, and never reach an upstream for an
// unidentified caller.
func FuzzProxyRequest(f *testing.F) {
	f.Add("GET /svc/up/a?b=c HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test:spiffe://writ.local/agent/a\r\n\r\n")
	f.Add("GET http://api.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n")
	f.Add("CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n")
	f.Add("GET /svc/up/%2e%2e/%zz HTTP/1.1\r\nHost: [::1]:80\r\nWrit-Task: t\r\n\r\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	fx := newFixture(f, up.URL, "  match: {host: api.example}\n", nil)
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		fx.p.ServeHTTP(rec, req)
		if rec.Code == 0 {
			t.Fatal("no status")
		}
		if req.Header.Get("Authorization") == "" && rec.Code == http.StatusOK && req.Method != http.MethodConnect {
			t.Fatalf("unidentified request answered 200: %q", raw)
		}
	})
}

func storeResource(name string, spec []byte) store.Resource {
	return store.Resource{Kind: resource.KindService, Name: name, Version: 1, Spec: spec}
}

// TestPostgresService: a Service with a postgres: block compiles to a
// dbcreds Service, carries the database server as its Upstream (default
// port filled in) for discovery, takes none of the HTTP fields, and is
// not routed by the HTTP proxy.
func TestPostgresService(t *testing.T) {
	pg := func(extra string) resource.Document {
		t.Helper()
		docs, err := resource.Parse("db.yaml", []byte(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: orders-db}
spec:
  upstream: postgres://db.internal/orders?sslmode=require
  postgres:
    admin: pg-admin
    grants: [{privileges: [SELECT], tables: [orders]}]
`+extra))
		if err != nil {
			t.Fatal(err)
		}
		return docs[0]
	}
	spec, err := StoredSpec(pg(""))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := CompileService(store.Resource{Kind: resource.KindService, Name: "orders-db", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Postgres == nil || svc.Postgres.Database != "orders" || svc.Upstream.Host != "db.internal:5432" || svc.accessTarget().Ref != "Service/orders-db" {
		t.Errorf("compiled %+v (postgres %+v)", svc, svc.Postgres)
	}
	tab, err := NewTable([]*Service{svc})
	if err != nil || tab.Get("orders-db") != nil {
		t.Errorf("the HTTP routing table holds the postgres Service: %v", err)
	}
	if s, _ := tab.ByPath("/svc/orders-db/x"); s != nil {
		t.Error("the HTTP proxy routes /svc/orders-db/")
	}
	for extra, field := range map[string]string{
		"  match: {host: db.internal}\n": "spec.match",
		"  credential: {name: x}\n":      "spec.credential",
		"  intercept: true\n":            "spec.intercept",
		"  timeouts: {connect: 1s}\n":    "spec.intercept",
		"  labels: [\"a b\"]\n":          "spec.labels.0",
	} {
		if _, err := StoredSpec(pg(extra)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("with %q: %v, want an error at %s", extra, err, field)
		}
	}
}
