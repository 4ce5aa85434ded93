package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Descriptor is what the gateway pins of one tool: everything an agent's
// model reads about it and the schemas it fills in. Schemas and annotations
// are kept as the upstream sent them (raw JSON).
type Descriptor struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

// MaxToolsList bounds a tools/list document the gateway or `writ mcp`
// reads, in bytes.
const MaxToolsList = 16 << 20

// Digests returns the digest of the descriptor and its shape: the digest
// of the same fields without the name, by which a renamed tool is
// recognised. Both are "sha256:" and the hex SHA-256 of the canonical JSON
// (see [Canonical]) of an object holding name, title, description,
// inputSchema, outputSchema and annotations, absent ones left out.
func (d Descriptor) Digests() (digest, shape string, err error) {
	if d.Name == "" {
		return "", "", errors.New("digest tool: the tool has no name")
	}
	full, err := d.canonical(true)
	if err != nil {
		return "", "", fmt.Errorf("digest tool %q: %w", d.Name, err)
	}
	noName, err := d.canonical(false)
	if err != nil {
		return "", "", fmt.Errorf("digest tool %q: %w", d.Name, err)
	}
	return Digest(full), Digest(noName), nil
}

func (d Descriptor) canonical(withName bool) ([]byte, error) {
	m := map[string]json.RawMessage{}
	str := func(k, v string) {
		if v != "" {
			b, _ := json.Marshal(v)
			m[k] = b
		}
	}
	if withName {
		str("name", d.Name)
	}
	str("title", d.Title)
	str("description", d.Description)
	for k, v := range map[string]json.RawMessage{"inputSchema": d.InputSchema, "outputSchema": d.OutputSchema, "annotations": d.Annotations} {
		if len(bytes.TrimSpace(v)) > 0 && string(bytes.TrimSpace(v)) != "null" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return Canonical(b)
}

// ParseToolsList reads a list of tool descriptors from JSON: a tools/list
// result ({"tools": [...]}), a whole JSON-RPC response holding one
// ({"jsonrpc": "2.0", "result": {"tools": [...]}}), or a bare array of
// tools. Every tool needs a name, and names must be unique.
func ParseToolsList(raw []byte) ([]Descriptor, error) {
	if len(raw) > MaxToolsList {
		return nil, fmt.Errorf("read tools list: %d bytes, more than the %d allowed", len(raw), MaxToolsList)
	}
	raw = bytes.TrimSpace(raw)
	var tools []Descriptor
	switch {
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &tools); err != nil {
			return nil, fmt.Errorf("read tools list: %w", err)
		}
	default:
		var doc struct {
			Tools  *[]Descriptor `json:"tools"`
			Result *struct {
				Tools *[]Descriptor `json:"tools"`
			} `json:"result"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("read tools list: %w", err)
		}
		switch {
		case doc.Tools != nil:
			tools = *doc.Tools
		case doc.Result != nil && doc.Result.Tools != nil:
			tools = *doc.Result.Tools
		default:
			return nil, errors.New("read tools list: no \"tools\" array; give a tools/list result, a JSON-RPC response holding one, or an array of tools")
		}
	}
	seen := map[string]int{}
	for i, t := range tools {
		if t.Name == "" {
			return nil, fmt.Errorf("read tools list: tool %d has no name", i)
		}
		if j, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("read tools list: tool %q is listed twice (%d and %d)", t.Name, j, i)
		}
		seen[t.Name] = i
	}
	return tools, nil
}
