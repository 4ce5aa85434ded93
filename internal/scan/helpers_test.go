package scan

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/secrets"
)

var testKey = []byte("scan-test-fingerprint-key-0123456789")

var (
	detOnce sync.Once
	det     *secrets.Detector
	detErr  error
)

func testDetector(tb testing.TB) *secrets.Detector {
	tb.Helper()
	detOnce.Do(func() { det, detErr = secrets.New(secrets.Config{FingerprintKey: testKey}) })
	if detErr != nil {
		tb.Fatal(detErr)
	}
	return det
}

func testScanner(tb testing.TB, ig *Ignore) *Scanner {
	tb.Helper()
	if ig == nil {
		ig, _ = ParseIgnore("", nil)
	}
	s, err := New(Config{Detector: testDetector(tb), Ignore: ig, Workers: 2})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// fake returns n characters of alphabet derived from label: the same every
// run, random-looking, and not a real credential (as internal/secrets'
// tests build theirs), so that no credential-shaped literal is in the
// repository.
func fake(label, alphabet string, n int) string {
	var b strings.Builder
	seed := sha256.Sum256([]byte(label))
	for b.Len() < n {
		for _, c := range seed {
			if b.Len() == n {
				break
			}
			b.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		seed = sha256.Sum256(seed[:])
	}
	return b.String()
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	hexdigits   = "0123456789abcdef"
)

func writeFiles(tb testing.TB, root string, files map[string]string) {
	tb.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
