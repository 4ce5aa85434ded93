package config

import (
	"strings"
	"testing"
	"time"
)

func TestProxyConfig(t *testing.T) {
	var c Config
	c.Defaults()
	if c.Proxy.Listen != "127.0.0.1:8181" || c.Proxy.ApprovalWait != 5*time.Minute || c.Proxy.MaxBodyBytes != 64<<20 || c.Proxy.TLSListen != "" {
		t.Errorf("proxy defaults: %+v", c.Proxy)
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"ok", "proxy:\n  listen: 127.0.0.1:9000\n  tls_listen: 127.0.0.1:9443\n  approval_wait: 30s\n", ""},
		{"off", "proxy:\n  listen: \"off\"\n", ""},
		{"bad listen", "proxy:\n  listen: nope\n", "proxy.listen"},
		{"bad tls", "proxy:\n  tls_listen: 9443\n", "proxy.tls_listen"},
		{"negative wait", "proxy:\n  approval_wait: -1s\n", "proxy.approval_wait"},
		{"tiny headers", "proxy:\n  max_header_bytes: 10\n", "proxy.max_header_bytes"},
		{"unknown key", "proxy:\n  listne: x\n", "listne"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.yaml))
			if err == nil {
				c.Defaults()
				err = c.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}
