package scan

import (
	"context"
	"sync"
	"testing"
)

// Expected announces exactly the bytes Progress then counts, for a tree
// and for a history (a skipped path and a too-big file excluded).
func TestExpectedMatchesScanned(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"a.env":             "GH_TOKEN=ghp_" + fake("exp-ghp", alnum, 36) + "\n",
		"src/main.go":       "package main\n",
		"big.txt":           string(make([]byte, 4096)),
		"node_modules/x.js": "skipped by the detector's path allowlist\n",
	})
	check := func(name string, run func(*Scanner) error) {
		var mu sync.Mutex
		var expected, scanned int64
		calls := 0
		s, err := New(Config{Detector: testDetector(t), Workers: 2, MaxFileSize: 1024,
			Progress: func(n int64) { mu.Lock(); scanned = n; mu.Unlock() },
			Expected: func(n int64) { expected = n; calls++ }})
		if err != nil {
			t.Fatal(err)
		}
		if err := run(s); err != nil {
			t.Fatal(err)
		}
		if calls != 1 || expected == 0 || expected != scanned {
			t.Errorf("%s: Expected called %d times with %d; Progress ended at %d", name, calls, expected, scanned)
		}
	}
	check("tree", func(s *Scanner) error { _, err := s.Dir(context.Background(), root); return err })
	r := newGitRepo(t)
	r.commit("one", map[string]string{"a.env": "GH_TOKEN=ghp_" + fake("exp-ghp2", alnum, 36) + "\n", "big.txt": string(make([]byte, 4096))})
	r.commit("two", map[string]string{"b.txt": "hello\n"})
	check("history", func(s *Scanner) error { _, err := s.Git(context.Background(), r.dir); return err })
}
