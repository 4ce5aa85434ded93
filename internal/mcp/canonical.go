package mcp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxCanonicalDepth bounds the nesting of a value [Canonical] accepts, so a
// hostile descriptor cannot exhaust the stack.
const maxCanonicalDepth = 64

// Canonical returns the canonical JSON encoding of the JSON value in raw,
// after RFC 8785 (JCS): object members sorted by key (by UTF-16 code units,
// as JCS says), no insignificant whitespace, strings escaped minimally
// (only '"', '\\' and control characters, the latter as \b \t \n \f \r or
// \u00XX), and numbers written as ECMAScript writes a double (integers
// without a fraction or exponent). Duplicate object keys and invalid UTF-8
// are refused, so two different documents never share an encoding.
func Canonical(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		// encoding/json would replace invalid bytes with U+FFFD.
		return nil, errors.New("canonicalize JSON: invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := canonicalValue(dec, &buf, 0); err != nil {
		return nil, fmt.Errorf("canonicalize JSON: %w", err)
	}
	// Anything after the value, even what is not JSON at all ("0A00"),
	// is refused: only the end of the input may follow.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonicalize JSON: data after the value")
	}
	return buf.Bytes(), nil
}

func canonicalValue(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	if depth > maxCanonicalDepth {
		return fmt.Errorf("nested more than %d deep", maxCanonicalDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			type member struct {
				key string
				val []byte
			}
			var members []member
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k := kt.(string)
				if !utf8.ValidString(k) {
					return errors.New("invalid UTF-8 in a key")
				}
				if seen[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				seen[k] = true
				var vb bytes.Buffer
				if err := canonicalValue(dec, &vb, depth+1); err != nil {
					return err
				}
				members = append(members, member{k, vb.Bytes()})
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
			buf.WriteByte('{')
			for i, m := range members {
				if i > 0 {
					buf.WriteByte(',')
				}
				writeString(buf, m.key)
				buf.WriteByte(':')
				buf.Write(m.val)
			}
			buf.WriteByte('}')
		case '[':
			buf.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					buf.WriteByte(',')
				}
				if err := canonicalValue(dec, buf, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			buf.WriteByte(']')
		default:
			return fmt.Errorf("unexpected %v", t)
		}
	case string:
		if !utf8.ValidString(t) {
			return errors.New("invalid UTF-8 in a string")
		}
		writeString(buf, t)
	case json.Number:
		s, err := canonicalNumber(t)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
	return nil
}

// canonicalNumber writes n as ECMAScript's Number.prototype.toString does.
func canonicalNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %s is out of range", n)
	}
	if f == 0 {
		return "0", nil
	}
	abs := math.Abs(f)
	if abs >= 1e21 || abs < 1e-6 {
		// Exponent form: shortest digits, "e+" or "e-", no leading zeros.
		s := strconv.FormatFloat(f, 'e', -1, 64)
		mant, exp, _ := bytes.Cut([]byte(s), []byte("e"))
		sign := exp[0]
		digits := bytes.TrimLeft(exp[1:], "0")
		return string(mant) + "e" + string(sign) + string(digits), nil
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			buf.WriteString(`\"`)
		case r == '\\':
			buf.WriteString(`\\`)
		case r == '\b':
			buf.WriteString(`\b`)
		case r == '\t':
			buf.WriteString(`\t`)
		case r == '\n':
			buf.WriteString(`\n`)
		case r == '\f':
			buf.WriteString(`\f`)
		case r == '\r':
			buf.WriteString(`\r`)
		case r < 0x20:
			fmt.Fprintf(buf, `\u%04x`, r)
		default:
			buf.WriteRune(r)
		}
	}
	buf.WriteByte('"')
}

// compareUTF16 orders strings by their UTF-16 code units, as JCS sorts keys.
func compareUTF16(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	for i := 0; i < len(ra) && i < len(rb); i++ {
		ua, ub := utf16Units(ra[i]), utf16Units(rb[i])
		for j := 0; j < len(ua) && j < len(ub); j++ {
			if ua[j] != ub[j] {
				return int(ua[j]) - int(ub[j])
			}
		}
		if len(ua) != len(ub) {
			return len(ua) - len(ub)
		}
	}
	return len(ra) - len(rb)
}

func utf16Units(r rune) []uint16 {
	if r < 0x10000 {
		return []uint16{uint16(r)}
	}
	r -= 0x10000
	return []uint16{uint16(0xD800 + (r >> 10)), uint16(0xDC00 + (r & 0x3FF))}
}

// Digest returns "sha256:" and the hex SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
