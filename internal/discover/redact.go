package discover

import (
	"strings"

	"github.com/writ-dev/writ/internal/secrets"
)

// Redacted replaces a value that is not shown.
const Redacted = "[REDACTED]"

// secretFlags are option names whose value is a secret.
var secretFlags = []string{
	"token", "password", "passwd", "pass", "pwd", "secret", "api-key", "apikey", "api_key", "key",
	"access-token", "auth-token", "client-secret", "private-key", "bearer", "auth", "credentials",
	"access-key", "secret-key", "session-token", "github-token", "openai-api-key", "anthropic-api-key",
}

// secretName reports whether an environment variable or option name is
// one that holds secrets: it says TOKEN, SECRET, PASSWORD, API_KEY, ... as
// a whole word.
func secretName(name string) bool {
	n := strings.ToUpper(strings.TrimLeft(name, "-"))
	n = strings.ReplaceAll(n, "-", "_")
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "API_KEY", "APIKEY",
		"ACCESS_KEY", "PRIVATE_KEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "PWD", "PASS", "KEY"} {
		for i := 0; ; {
			j := strings.Index(n[i:], w)
			if j < 0 {
				break
			}
			j += i
			end := j + len(w)
			if (j == 0 || n[j-1] == '_') && (end == len(n) || n[end] == '_' || (w != "KEY" && n[end] == 'S')) {
				if w == "PWD" && n == "PWD" || w == "KEY" && !strings.HasSuffix(n, "_KEY") && n != "KEY" {
					break // $PWD is the working directory; KEY only as a suffix
				}
				return true
			}
			i = j + 1
		}
	}
	return false
}

// RedactArgs returns argv with secret-looking arguments replaced: the
// value of an option named like a secret (--token X, --password=X,
// -pX is not guessed), the value of a NAME=VALUE argument whose name is
// secret-looking, and every secret d finds in an argument (keys with a
// known format, passwords in URLs). argv itself is not changed.
func RedactArgs(d *secrets.Detector, argv []string) []string {
	out := make([]string, len(argv))
	next := false
	for i, a := range argv {
		if next {
			out[i], next = Redacted, false
			continue
		}
		if strings.HasPrefix(a, "-") {
			name, _, hasValue := strings.Cut(a, "=")
			if isSecretFlag(name) {
				if hasValue {
					out[i] = name + "=" + Redacted
				} else {
					out[i], next = a, true
				}
				continue
			}
		} else if name, _, ok := strings.Cut(a, "="); ok && i > 0 && isEnvName(name) && secretName(name) {
			out[i] = name + "=" + Redacted
			continue
		}
		out[i] = redactString(d, a)
	}
	return out
}

func isSecretFlag(name string) bool {
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	if n == "" || !strings.HasPrefix(name, "-") {
		return false
	}
	for _, f := range secretFlags {
		if n == f || strings.HasSuffix(n, "-"+f) || strings.HasSuffix(n, "_"+f) {
			return true
		}
	}
	return false
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// redactString replaces every secret d finds in s.
func redactString(d *secrets.Detector, s string) string {
	if d == nil || s == "" {
		return s
	}
	red, fs := d.Redact([]byte(s))
	if len(fs) == 0 {
		return s
	}
	return string(red)
}
