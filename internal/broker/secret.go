package broker

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret is a credential value. It prints, logs and encodes as
// "[REDACTED]" whatever the verb or encoder, so it cannot reach a log, an
// event, an error or an API response by accident; [Secret.Reveal] is the
// one way to read it, for the code that injects it into an upstream
// request. Secrets are not comparable with ==; use [Secret.Equal].
type Secret struct {
	_ [0]func() // not comparable
	b []byte
}

// NewSecret returns a Secret holding a copy of b.
func NewSecret(b []byte) Secret { return Secret{b: append([]byte(nil), b...)} }

// Reveal returns the value. Call it only to put the value on the wire.
func (s Secret) Reveal() string { return string(s.b) }

// Len returns the value's length in bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares two secrets in constant time (for equal lengths).
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so %x, %q and friends redact too.
func (Secret) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
