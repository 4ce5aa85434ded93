package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/servertest"
)

// The runtime profiles are served to the admin only, as pprof documents,
// and nothing is served on the standard library's default /debug/pprof/.
func TestDebugPprof(t *testing.T) {
	in := servertest.Start(t, servertest.Config(filepath.Join(t.TempDir(), "data")), nil)
	tok, err := os.ReadFile(in.Server.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", in.Addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	admin := strings.TrimSpace(string(tok))
	for name, sampleType := range map[string]string{"heap": "inuse_space", "goroutine": "goroutine", "allocs": "alloc_space"} {
		code, body := get("/v1/debug/pprof/"+name, admin)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", name, code, body)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: not a gzipped profile: %v", name, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || !bytes.Contains(raw, []byte(sampleType)) {
			t.Fatalf("%s: not a pprof profile with samples of %s (%d bytes, %v)", name, sampleType, len(raw), err)
		}
	}
	if code, _ := get("/v1/debug/pprof/heap", ""); code != http.StatusUnauthorized {
		t.Errorf("heap profile without the admin credential: status %d, want 401", code)
	}
	if code, _ := get("/v1/debug/pprof/heap", "not-the-token"); code != http.StatusUnauthorized {
		t.Errorf("heap profile with a wrong credential: status %d, want 401", code)
	}
	if code, body := get("/v1/debug/pprof/cmdline", admin); code != http.StatusNotFound || !strings.Contains(string(body), "no profile") {
		t.Errorf("cmdline (not a profile; it would show the command line): status %d %s, want 404", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, _ := get(path, ""); code == http.StatusOK {
			t.Errorf("%s is served without authentication", path)
		}
	}
}
