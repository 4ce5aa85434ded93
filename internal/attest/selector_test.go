package attest

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/store"
)

func TestParseSelector(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		in      string
		want    store.Selector
		wantErr string // substring of the error; "" means success
	}{
		{in: "unix:uid:1000", want: store.Selector{Type: "unix", Value: "uid:1000"}},
		{in: "unix:uid:0", want: store.Selector{Type: "unix", Value: "uid:0"}},
		{in: "unix:uid:4294967294", want: store.Selector{Type: "unix", Value: "uid:4294967294"}},
		{in: "unix:gid:27", want: store.Selector{Type: "unix", Value: "gid:27"}},
		{in: "unix:supplementary_gid:4", want: store.Selector{Type: "unix", Value: "supplementary_gid:4"}},
		{in: "unix:user:alice", want: store.Selector{Type: "unix", Value: "user:alice"}},
		{in: "unix:user:svc-agent.1$", want: store.Selector{Type: "unix", Value: "user:svc-agent.1$"}},
		{in: "unix:group:Domain Users", want: store.Selector{Type: "unix", Value: "group:Domain Users"}},
		{in: "unix:supplementary_group:docker", want: store.Selector{Type: "unix", Value: "supplementary_group:docker"}},
		{in: "unix:path:/usr/bin/python3", want: store.Selector{Type: "unix", Value: "path:/usr/bin/python3"}},
		{in: "unix:path:/opt/my agent/run:1", want: store.Selector{Type: "unix", Value: "path:/opt/my agent/run:1"}},
		{in: "unix:sha256:" + sum, want: store.Selector{Type: "unix", Value: "sha256:" + sum}},

		{in: "", wantErr: "want TYPE:KEY:VALUE"},
		{in: "unix", wantErr: "want TYPE:KEY:VALUE"},
		{in: "k8s:ns:default", wantErr: `unknown selector type "k8s"`},
		{in: "UNIX:uid:1", wantErr: `unknown selector type "UNIX"`},
		{in: "unix:uid", wantErr: "no KEY:VALUE"},
		{in: "unix:pid:1", wantErr: `unknown unix selector key "pid"`},
		{in: "unix:uid:", wantErr: "decimal id"},
		{in: "unix:uid:-1", wantErr: "decimal id"},
		{in: "unix:uid:+1", wantErr: "decimal id"},
		{in: "unix:uid:01000", wantErr: "without leading zeros"},
		{in: "unix:uid:4294967295", wantErr: "decimal id"},
		{in: "unix:uid:99999999999", wantErr: "decimal id"},
		{in: "unix:gid:abc", wantErr: "decimal id"},
		{in: "unix:uid: 1", wantErr: "decimal id"},
		{in: "unix:user:", wantErr: "name is empty"},
		{in: "unix:user: alice", wantErr: "leading or trailing space"},
		{in: "unix:user:a:b", wantErr: "contains ':'"},
		{in: "unix:group:a\nb", wantErr: "control character"},
		{in: "unix:user:" + strings.Repeat("a", 257), wantErr: "longer than 256"},
		{in: "unix:user:\xff", wantErr: "not valid UTF-8"},
		{in: "unix:path:usr/bin/python3", wantErr: "not absolute"},
		{in: "unix:path:", wantErr: "not absolute"},
		{in: "unix:path:/usr/bin/../bin/sh", wantErr: `write "/usr/bin/sh"`},
		{in: "unix:path:/usr/bin/", wantErr: "not clean"},
		{in: "unix:path:/a\x00b", wantErr: "NUL"},
		{in: "unix:sha256:" + strings.ToUpper(sum), wantErr: "64 lower-case hex"},
		{in: "unix:sha256:" + sum[:63], wantErr: "64 lower-case hex"},
		{in: "unix:sha256:" + sum + "0", wantErr: "64 lower-case hex"},
		{in: "unix:sha256:" + sum[:63] + "g", wantErr: "64 lower-case hex"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSelector(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseSelector(%q) = %v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSelector(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "parse selector") {
					t.Errorf("error %q does not name the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseSelector(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := FormatSelector(got); s != tt.in {
				t.Errorf("FormatSelector = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestSelectorErrorsListAcceptedForms(t *testing.T) {
	_, err := ParseSelector("unix:exe:/bin/sh")
	if err == nil || !strings.Contains(err.Error(), "unix:path:/ABS/PATH") || !strings.Contains(err.Error(), "unix:uid:N") {
		t.Fatalf("error %v does not list the accepted forms", err)
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{
		"unix:uid:1000", "unix:user:alice", "unix:gid:0", "unix:group:wheel",
		"unix:supplementary_gid:27", "unix:supplementary_group:sudo",
		"unix:path:/usr/bin/python3", "unix:sha256:" + strings.Repeat("ab", 32),
		"unix:uid:01", "unix::", "x", "unix:path:/a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if !strings.Contains(err.Error(), "parse selector") {
				t.Errorf("error %q does not name the input", err)
			}
			return
		}
		if out := FormatSelector(sel); out != s {
			t.Errorf("FormatSelector(ParseSelector(%q)) = %q", s, out)
		}
		again, err := ParseSelector(FormatSelector(sel))
		if err != nil || again != sel {
			t.Errorf("round trip of %q: %+v, %v", s, again, err)
		}
		if err := ValidateSelector(sel); err != nil {
			t.Errorf("ValidateSelector rejects parsed %q: %v", s, err)
		}
	})
}
