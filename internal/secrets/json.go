package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// RedactJSON redacts the secrets in the strings of a JSON document (object
// keys and string values, at any depth) and returns a document that is still
// valid JSON, identical to data outside the strings it changed. A string
// value is scanned together with the key that names it ("password": "x" is
// seen as password=x), so that generic rules keep their context; a secret
// split over several strings is not found. Findings carry the JSON pointer
// of their string and spans within its decoded value. It returns
// [ErrNotJSON] for input that is not one JSON value.
func (d *Detector) RedactJSON(data []byte) ([]byte, []Finding, error) {
	if !json.Valid(data) {
		return nil, nil, fmt.Errorf("redact json: %w", ErrNotJSON)
	}
	w := jsonWalker{d: d, data: data}
	if err := w.walk(); err != nil {
		return nil, nil, fmt.Errorf("redact json: %w", err)
	}
	if w.out == nil {
		return data, nil, nil
	}
	w.out.Write(data[w.last:])
	return w.out.Bytes(), w.findings, nil
}

// frame is one open container of the document being walked.
type frame struct {
	object bool
	index  int    // next element's index (arrays)
	key    string // current key (objects), decoded
	keyTok string // pointer token of the key
	inKey  bool   // the next string is a key (objects)
}

type jsonWalker struct {
	d        *Detector
	data     []byte
	stack    []frame
	out      *bytes.Buffer
	last     int
	findings []Finding
}

// walk lexes the (already validated) document, visiting each string.
func (w *jsonWalker) walk() error {
	data := w.data
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case '{':
			w.stack = append(w.stack, frame{object: true, inKey: true})
			i++
		case '[':
			w.stack = append(w.stack, frame{})
			i++
		case '}', ']':
			w.stack = w.stack[:len(w.stack)-1]
			w.endValue()
			i++
		case ',':
			if n := len(w.stack); n > 0 && w.stack[n-1].object {
				w.stack[n-1].inKey = true
			}
			i++
		case ':':
			i++
		case '"':
			end := stringEnd(data, i)
			if end < 0 {
				return ErrNotJSON
			}
			if err := w.visitString(i, end); err != nil {
				return err
			}
			i = end
		default:
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				i++
				continue
			}
			// A number, true, false or null.
			for i < len(data) && !strings.ContainsRune(",]} \t\r\n", rune(data[i])) {
				i++
			}
			w.endValue()
		}
	}
	return nil
}

// endValue is called at the end of any value.
func (w *jsonWalker) endValue() {
	if n := len(w.stack); n > 0 && !w.stack[n-1].object {
		w.stack[n-1].index++
	}
}

// pointer returns the JSON pointer of the current position; with key set,
// of the object whose key is being read.
func (w *jsonWalker) pointer(key bool) string {
	var b strings.Builder
	for i, f := range w.stack {
		last := i == len(w.stack)-1
		if f.object {
			if last && key {
				break
			}
			b.WriteByte('/')
			b.WriteString(f.keyTok)
		} else {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(f.index))
		}
	}
	return b.String()
}

// visitString scans the string literal data[start:end] (quotes included).
func (w *jsonWalker) visitString(start, end int) error {
	var s string
	if err := json.Unmarshal(w.data[start:end], &s); err != nil {
		return ErrNotJSON
	}
	n := len(w.stack)
	isKey := n > 0 && w.stack[n-1].object && w.stack[n-1].inKey
	var ptr, prefix string
	if isKey {
		ptr = w.pointer(true)
		f := &w.stack[n-1]
		f.key, f.keyTok, f.inKey = s, pointerToken(s), false
	} else {
		ptr = w.pointer(false)
		if n > 0 && w.stack[n-1].object {
			prefix = w.stack[n-1].key + "="
		}
	}
	red, fs := w.d.redactValue(prefix, s)
	if !isKey {
		w.endValue()
	}
	if len(fs) == 0 {
		return nil
	}
	for i := range fs {
		fs[i].Pointer, fs[i].Key = ptr, isKey
	}
	w.findings = append(w.findings, fs...)
	if w.out == nil {
		w.out = new(bytes.Buffer)
		w.out.Grow(len(w.data))
	}
	w.out.Write(w.data[w.last:start])
	enc, err := marshalString(red)
	if err != nil {
		return err
	}
	w.out.Write(enc)
	w.last = end
	return nil
}

// redactValue redacts s, scanned after prefix (its key); findings and the
// result are of s alone.
func (d *Detector) redactValue(prefix, s string) (string, []Finding) {
	p := len(prefix)
	kept := clipFindings(d.Find([]byte(prefix+s)), p)
	if len(kept) == 0 {
		return s, nil
	}
	val := []byte(s)
	for i := range kept {
		kept[i].Line, kept[i].Column = lineCol(val, kept[i].Start)
		kept[i].Fingerprint = d.Fingerprint(val[kept[i].Start:kept[i].End])
	}
	out := d.replace(val, kept)
	for pass := 1; pass < maxRedactPasses; pass++ {
		more := clipFindings(d.Find([]byte(prefix+string(out))), p)
		if len(more) == 0 {
			break
		}
		out = d.replace(out, more)
	}
	return string(out), kept
}

// clipFindings keeps the parts of findings that fall after the first p
// bytes, with spans shifted by -p.
func clipFindings(fs []Finding, p int) []Finding {
	kept := fs[:0]
	for _, f := range fs {
		if f.End <= p {
			continue
		}
		f.Start = max(f.Start, p) - p
		f.End -= p
		kept = append(kept, f)
	}
	return kept
}

func lineCol(b []byte, off int) (int, int) {
	line := 1 + bytes.Count(b[:off], []byte{'\n'})
	return line, off - (bytes.LastIndexByte(b[:off], '\n') + 1) + 1
}

// stringEnd returns the index just past the string literal starting at
// data[i] (a quote), or -1.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func pointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func marshalString(s string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
