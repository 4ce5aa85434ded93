package token

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseExchange(t *testing.T) {
	base := func() url.Values {
		return url.Values{"grant_type": {GrantExchange}, "subject_token": {"a.b.c"}, "subject_token_type": {TypeJWT},
			"audience": {"mail-api"}, "task": {"task_1"}, "scope": {"mail.read mail.draft"}}
	}
	for _, tc := range []struct {
		name   string
		mutate func(url.Values)
		code   string
	}{
		{"valid", func(url.Values) {}, ""},
		{"resource instead of audience", func(v url.Values) { v.Del("audience"); v.Set("resource", "https://mail/") }, ""},
		{"mTLS caller without subject token", func(v url.Values) { v.Del("subject_token"); v.Del("subject_token_type") }, ""},
		{"no grant type", func(v url.Values) { v.Del("grant_type") }, CodeInvalidRequest},
		{"other grant type", func(v url.Values) { v.Set("grant_type", "client_credentials") }, CodeUnsupported},
		{"repeated parameter", func(v url.Values) { v.Add("task", "task_2") }, CodeInvalidRequest},
		{"two audiences", func(v url.Values) { v.Add("audience", "billing") }, CodeInvalidTarget},
		{"audience and resource", func(v url.Values) { v.Set("resource", "x") }, CodeInvalidTarget},
		{"no audience", func(v url.Values) { v.Del("audience") }, CodeInvalidTarget},
		{"control character in audience", func(v url.Values) { v.Set("audience", "a\nb") }, CodeInvalidTarget},
		{"bad scope token", func(v url.Values) { v.Set("scope", `mail"read`) }, CodeInvalidScope},
		{"too many scopes", func(v url.Values) { v.Set("scope", strings.Repeat("s ", 65)) }, CodeInvalidScope},
		{"wrong subject token type", func(v url.Values) { v.Set("subject_token_type", TypeAccessToken) }, CodeInvalidRequest},
		{"type without token", func(v url.Values) { v.Del("subject_token") }, CodeInvalidRequest},
		{"oversized subject token", func(v url.Values) { v.Set("subject_token", strings.Repeat("a", maxTokenBytes+1)) }, CodeInvalidRequest},
		{"no task", func(v url.Values) { v.Del("task") }, CodeInvalidRequest},
		{"bad single_use", func(v url.Values) { v.Set("single_use", "yes") }, CodeInvalidRequest},
		{"actor token without type", func(v url.Values) { v.Set("actor_token", "x") }, CodeInvalidRequest},
		{"details not an array", func(v url.Values) { v.Set("authorization_details", `{"type":"x"}`) }, "invalid_authorization_details"},
		{"details without type", func(v url.Values) { v.Set("authorization_details", `[{"actions":["read"]}]`) }, "invalid_authorization_details"},
		{"details outside the audience", func(v url.Values) {
			v.Set("authorization_details", `[{"type":"mail","locations":["https://evil"]}]`)
		}, "invalid_authorization_details"},
		{"details inside the audience", func(v url.Values) {
			v.Set("authorization_details", `[{"type":"mail","locations":["mail-api"],"actions":["read"]}]`)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := base()
			tc.mutate(v)
			r, err := ParseExchange(v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("ParseExchange = %v, want success", err)
				}
				if r.Audience == "" || r.Task != "task_1" {
					t.Errorf("request = %+v", r)
				}
				return
			}
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != tc.code {
				t.Errorf("ParseExchange = %v, want %s", err, tc.code)
			}
		})
	}
}

// FuzzParseExchange checks that the form decoder never panics and that
// what it accepts is within its limits.
func FuzzParseExchange(f *testing.F) {
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=x&task=t&scope=a+b")
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&audience=x&task=t&authorization_details=%5B%7B%22type%22%3A%22a%22%7D%5D")
	f.Add("audience=a&audience=b&resource=c")
	f.Add("%zz=1&&&=")
	f.Fuzz(func(t *testing.T, body string) {
		v, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		r, err := ParseExchange(v)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || oe.Code == "" || oe.Status < 400 {
				t.Fatalf("error %v is not an OAuth error", err)
			}
			return
		}
		if r.Audience == "" || r.Task == "" || len(r.Scopes) > maxScopes || len(r.SubjectToken) > maxTokenBytes {
			t.Fatalf("accepted out-of-bounds request %+v", r)
		}
	})
}

// FuzzVerify checks that the token parser never panics and accepts
// nothing but the tokens writ signed.
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	good := e.mint(f, nil)
	f.Add(good)
	parts := strings.Split(good, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64(map[string]any{"alg": "none", "typ": "at+jwt"}) + "." + parts[1] + ".")
	f.Add(b64(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "x"}) + "." + parts[1] + ".AAAA")
	f.Add("..")
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := e.ver.Verify(t.Context(), raw, VerifyOptions{Audience: "mail-api", SkipReplay: true})
		if err == nil && raw != good {
			// Only a re-encoding of the same signed token may pass.
			if c.Issuer != testIssuer || !c.Audience.Contains("mail-api") {
				t.Fatalf("accepted %q with claims %+v", raw, c)
			}
		}
		_, _ = VerifyDPoP(raw, DPoPCheck{Method: "GET", URL: "https://x/", Now: e.now})
	})
}
