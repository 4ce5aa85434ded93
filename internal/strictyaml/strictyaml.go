// Package strictyaml decodes YAML into Go structs strictly: an unknown key is
// an error, and every error names the file, line, column and field path, so a
// user can go straight to the mistake. It is used for writ.yaml and for the
// declarative resource documents.
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a decoding error at a position in a YAML file.
type Error struct {
	File   string // may be empty
	Line   int    // 1-based; 0 if unknown
	Column int    // 1-based; 0 if unknown
	Field  string // dotted path such as "spec.selectors[1]"; may be empty
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	switch {
	case e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	case e.Line > 0:
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// At returns an Error positioned at node.
func At(file string, node *yaml.Node, field, format string, args ...any) *Error {
	e := &Error{File: file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if node != nil {
		e.Line, e.Column = node.Line, node.Column
	}
	return e
}

// Decode checks node against the shape of out (unknown keys are errors) and
// then decodes it into out. prefix is the field path of node ("" for a root).
func Decode(file string, node *yaml.Node, prefix string, out any) error {
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if err := check(file, node, prefix, reflect.TypeOf(out)); err != nil {
		return err
	}
	if err := node.Decode(out); err != nil {
		return convert(file, node, prefix, err)
	}
	return nil
}

// Unmarshal parses a single YAML document from data and decodes it strictly.
// An empty document leaves out unchanged.
func Unmarshal(file string, data []byte, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return convert(file, nil, "", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	return Decode(file, &doc, "", out)
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
	nodeType     = reflect.TypeOf(yaml.Node{})
)

func check(file string, node *yaml.Node, path string, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		return check(file, node.Alias, path, t)
	}
	if t == nodeType {
		return nil // raw node: the caller decodes it later
	}
	if t == durationType {
		if node.Kind != yaml.ScalarNode {
			return At(file, node, path, "want a duration such as 90s, 5m or 1h")
		}
		if _, err := time.ParseDuration(node.Value); err != nil {
			return At(file, node, path, "%q is not a duration; write it like 90s, 5m or 1h", node.Value)
		}
		return nil
	}
	if t == timeType {
		var v time.Time
		if node.Kind != yaml.ScalarNode || node.Decode(&v) != nil {
			return At(file, node, path, "want a time such as 2026-03-02T09:30:00Z (RFC 3339)")
		}
		return nil
	}
	if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
		return nil // the type checks itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
			return nil
		}
		if node.Kind != yaml.MappingNode {
			return At(file, node, path, "want a mapping of keys, got %s", kindName(node))
		}
		fields := structFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if k.Value == "<<" {
				return At(file, k, path, "merge keys (<<) are not supported")
			}
			if seen[k.Value] {
				return At(file, k, join(path, k.Value), "key appears twice")
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			if !ok {
				return At(file, k, join(path, k.Value), "unknown field; known fields are %s", knownList(fields))
			}
			if err := check(file, v, join(path, k.Value), f.Type); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		if node.Kind != yaml.SequenceNode {
			return At(file, node, path, "want a list, got %s", kindName(node))
		}
		for i, c := range node.Content {
			if err := check(file, c, fmt.Sprintf("%s[%d]", path, i), t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Map:
		if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
			return nil
		}
		if node.Kind != yaml.MappingNode {
			return At(file, node, path, "want a mapping, got %s", kindName(node))
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			if err := check(file, node.Content[i+1], join(path, node.Content[i].Value), t.Elem()); err != nil {
				return err
			}
		}
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if node.Kind != yaml.ScalarNode {
			return At(file, node, path, "want a single value (%s), got %s", t.Kind(), kindName(node))
		}
		if t.Kind() == reflect.String || node.Tag == "!!null" {
			return nil
		}
		// Decode the scalar alone, so that a wrong type is reported here,
		// with its column and field, rather than by the whole decode.
		// An integer field takes only an integer: the library would
		// truncate 1.5 to 1.
		isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
		if err := node.Decode(reflect.New(t).Interface()); err != nil || (isInt && node.ShortTag() != "!!int") {
			return At(file, node, path, "want %s, got %q", scalarWant(t), node.Value)
		}
	}
	return nil
}

// scalarWant names what a scalar of type t must be, for messages.
func scalarWant(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("an integer (%s)", t.Kind())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a non-negative integer (%s)", t.Kind())
	}
	return "a number"
}

type field struct{ Type reflect.Type }

func structFields(t reflect.Type) map[string]field {
	out := map[string]field{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = field{Type: f.Type}
	}
	return out
}

func knownList(fields map[string]field) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// convert turns a yaml library error into an *Error with the best position
// the library gives.
func convert(file string, node *yaml.Node, path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, tail, ok := strings.Cut(rest, ": "); ok {
				fmt.Sscanf(n, "%d", &line)
				msg = tail
			}
		}
		return &Error{File: file, Line: line, Column: 0, Field: path, Msg: msg}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			fmt.Sscanf(n, "%d", &line)
			msg = tail
		}
	}
	e := &Error{File: file, Line: line, Field: path, Msg: msg}
	if line == 0 && node != nil {
		e.Line, e.Column = node.Line, node.Column
	}
	return e
}
