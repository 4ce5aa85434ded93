package discover

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 18446744073709551615\n"))
	if err != nil || st.pid != 42 || st.ppid != 7 || st.comm != "a) b) (c" || st.startTicks != 123456 {
		t.Errorf("parseStat = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "42", "x (a) S 1", "42 (a) S", "0 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", "42 (a) S -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"42 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x 20"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted it", bad)
		}
	}
}

func TestParseStatusIDs(t *testing.T) {
	uid, gid, err := parseStatusIDs([]byte("Name:\tx\nUid:\t1000\t1001\t1000\t1000\nGid:\t50\t51\t50\t50\n"))
	if err != nil || uid != 1001 || gid != 51 {
		t.Errorf("parseStatusIDs = %d %d %v", uid, gid, err)
	}
	for _, bad := range []string{"", "Uid:\t1\n", "Uid:\t1\t-2\nGid:\t1\t1\n", "Uid:\t1\t99999999999\nGid:\t1\t1\n"} {
		if _, _, err := parseStatusIDs([]byte(bad)); err == nil {
			t.Errorf("parseStatusIDs(%q) accepted it", bad)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	id := strings.Repeat("ab12", 16)
	for in, want := range map[string][2]string{
		"0::/system.slice/docker-" + id + ".scope\n":              {"/system.slice/docker-" + id + ".scope", id},
		"0::/kubepods/besteffort/pod1/" + id + "\n":               {"/kubepods/besteffort/pod1/" + id, id},
		"0::/user.slice/user-1000.slice/session-2.scope\n":        {"/user.slice/user-1000.slice/session-2.scope", ""},
		"12:pids:/a\n0::/b\n":                                     {"/b", ""},
		"garbage":                                                 {"", ""},
		"0::/system.slice/cri-containerd-" + id + ".scope\nx::\n": {"/system.slice/cri-containerd-" + id + ".scope", id},
	} {
		p, c := parseCgroup([]byte(in))
		if p != want[0] || c != want[1] {
			t.Errorf("parseCgroup(%q) = %q, %q; want %q", in, p, c, want)
		}
	}
}

func TestParseMCPConfig(t *testing.T) {
	d := newDetector(t)
	tok := "ghp_" + alnum(36, mixed)
	key := alnum(40, mixed)
	doc := `{"mcpServers": {"gh": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "` + tok + `", "LOG_LEVEL": "debug"}}},
	 "servers": {"remote": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ` + key + `"}}},
	 "projects": {"/src/app": {"mcpServers": {"pg": {"command": "uvx", "args": ["mcp-server-postgres", "--password", "` + key + `"]}}}}}`
	decls, creds, err := ParseMCPConfig(d, "claude-code", "/h/.claude.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(decls) != 3 || decls[0].Server != "/src/app:pg" || decls[1].Server != "gh" || decls[2].Server != "remote" {
		t.Fatalf("servers: %+v", decls)
	}
	if len(decls[1].Env) != 2 || len(decls[1].Credentials) != 1 || len(decls[2].Credentials) != 1 || len(decls[0].Credentials) != 1 {
		t.Errorf("credentials per server: %+v", decls)
	}
	if len(creds) != 3 {
		t.Errorf("credentials: %+v", creds)
	}
	all := []byte(strings.Join(decls[0].Args, " ") + decls[2].URL)
	if bytes.Contains(all, []byte(key)) {
		t.Error("a secret argument survived redaction")
	}
	for _, bad := range []string{"", "{", `{"mcpServers": []}`, `{"mcpServers": {"x": {"args": "notalist"}}}`} {
		if _, _, err := ParseMCPConfig(d, "x", "f.json", []byte(bad)); err == nil {
			t.Errorf("ParseMCPConfig(%q) accepted it", bad)
		}
	}
}

func TestFileCredentials(t *testing.T) {
	d := newDetector(t)
	data := "[default]\naws_access_key_id = AKIA" + alnum(16, upperDigits) + "\n[prod]\naws_secret_access_key = " + alnum(40, mixed) + "\n"
	cs := fileCredentials(d, "/h/.aws/credentials", "aws-credentials", []byte(data))
	if len(cs) != 2 || cs[0].Name != "default" || cs[1].Name != "prod" || cs[0].Line != 2 {
		t.Errorf("fileCredentials = %+v", cs)
	}
	cs = fileCredentials(d, "/h/.kube/config", "kubeconfig", []byte("apiVersion: v1\nkind: Config\n"))
	if len(cs) != 1 || cs[0].Kind != "kubeconfig" || cs[0].Fingerprint == "" {
		t.Errorf("a file without a recognised secret: %+v", cs)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (a) b) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err == nil && (st.pid <= 0 || st.ppid < 0) {
			t.Fatalf("accepted %+v", st)
		}
	})
}

func FuzzParseStatusIDs(f *testing.F) {
	f.Add([]byte("Uid:\t1000\t1001\t1000\t1000\nGid:\t50\t51\t50\t50\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uid, gid, err := parseStatusIDs(b)
		if err == nil && (uid < 0 || gid < 0) {
			t.Fatalf("accepted %d %d", uid, gid)
		}
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/docker-" + strings.Repeat("a", 64) + ".scope\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, c := parseCgroup(b)
		if c != "" && (len(c) != 64 || !strings.Contains(p, c)) {
			t.Fatalf("container %q not from path %q", c, p)
		}
	})
}

func FuzzParseSocketLink(f *testing.F) {
	f.Add([]byte("socket:[12345]"))
	f.Add([]byte("pipe:[1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseSocketLink(b)
		splitNUL(b)
	})
}

func FuzzParseMCPConfig(f *testing.F) {
	f.Add([]byte(`{"mcpServers": {"gh": {"command": "npx", "args": ["--token", "abcdefgh12345678"], "env": {"GITHUB_TOKEN": "ghp_0123456789abcdefghijABCDEFGHIJ012345"}}}}`))
	f.Add([]byte(`{"mcp": {"servers": {"r": {"url": "https://u:p4ssw0rd99@h/mcp", "headers": {"Authorization": "Bearer x"}}}}}`))
	d := newDetector(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		decls, creds, err := ParseMCPConfig(d, "x", "f.json", b)
		if err != nil && (decls != nil || creds != nil) {
			t.Fatal("results with an error")
		}
		for _, c := range creds {
			if len(c.Fingerprint) != 64 {
				t.Fatalf("credential without a fingerprint: %+v", c)
			}
		}
	})
}

func FuzzFileCredentials(f *testing.F) {
	f.Add([]byte("[default]\naws_secret_access_key = abcdefghijklmnopqrstuvwxyz0123456789ABCD\n"))
	d := newDetector(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range fileCredentials(d, "f", "k", b) {
			if c.Fingerprint == "" || len(c.Name) > 128 {
				t.Fatalf("bad credential %+v", c)
			}
		}
	})
}
