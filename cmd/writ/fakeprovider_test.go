package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// fakeProvider plays GitHub's GET /user and Slack's POST /api/auth.test
// for `writ scan --validate` scripts, on the address os.Args[1]: a token
// listed (one a line) in the file os.Args[2] is valid, any other is not.
// Each call it serves is appended to the file os.Args[3] as "PROVIDER
// METHOD PATH STATE" (never the token), so a script counts the calls;
// anything else it is sent is logged as "unexpected". /readyz answers 200.
func fakeProvider() int {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: fakeprovider ADDR VALID-TOKENS-FILE LOG-FILE")
		return 2
	}
	b, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	valid := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			valid[t] = true
		}
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(os.Args[3], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return
		}
		fmt.Fprintf(f, format+"\n", args...)
		f.Close()
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := bearer && valid[tok]
		state := map[bool]string{true: "valid", false: "invalid"}[ok]
		switch {
		case r.URL.Path == "/readyz":
		case r.Method == http.MethodGet && r.URL.Path == "/github/user" && bearer:
			logf("github GET /user %s", state)
			if !ok {
				http.Error(w, `{"message": "Bad credentials"}`, http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, `{"login": "octocat"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/slack/api/auth.test" && bearer:
			logf("slack POST /api/auth.test %s", state)
			if !ok {
				fmt.Fprint(w, `{"ok": false, "error": "invalid_auth"}`)
				return
			}
			fmt.Fprint(w, `{"ok": true}`)
		default:
			logf("unexpected %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
		}
	})
	if err := http.ListenAndServe(os.Args[1], h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
