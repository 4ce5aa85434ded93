package scan

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// maxManifestDocs bounds how many YAML documents one file may hold before
// the manifest reader stops (the plain detector still sees every byte).
const maxManifestDocs = 1000

// SecretValue is one decoded value of a Kubernetes Secret's data map.
type SecretValue struct {
	Key   string
	Value []byte
	// Line and Column are where the value is written in the manifest.
	Line, Column int
	// Len is the length of the base64 text when it is written plain on
	// one line (0 otherwise: quoted, folded or multi-line).
	Len int
}

// SecretData returns the decoded values of the data maps of every
// Kubernetes Secret document in a YAML stream. Values that are not base64
// are skipped (the API server would refuse them). Reading stops at the
// first document that is not YAML: what was read before is returned.
func SecretData(src []byte) []SecretValue {
	if !bytes.Contains(src, []byte("Secret")) {
		return nil
	}
	var out []SecretValue
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for range maxManifestDocs {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) || err != nil {
			break
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode || scalar(m, "kind") != "Secret" {
			continue
		}
		data := child(m, "data")
		if data == nil || data.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(data.Content); i += 2 {
			k, v := data.Content[i], data.Content[i+1]
			if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
				continue
			}
			raw := stripSpace(v.Value)
			dec, err := base64.StdEncoding.DecodeString(raw)
			if err != nil || len(dec) == 0 {
				continue
			}
			sv := SecretValue{Key: k.Value, Value: dec, Line: v.Line, Column: v.Column}
			if v.Style == 0 && raw == v.Value {
				sv.Len = len(raw)
			}
			out = append(out, sv)
		}
	}
	return out
}

func child(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if n := child(m, key); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func stripSpace(s string) string {
	return string(bytes.Join(bytes.Fields([]byte(s)), nil))
}
