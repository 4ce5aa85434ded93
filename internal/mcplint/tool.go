package mcplint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MaxInput is the largest tools/list document Parse reads.
const MaxInput = 64 << 20

// Tool is one MCP tool descriptor, as a server lists it in the result of
// tools/list (MCP revisions 2025-06-18 and later): name, optional title and
// description, the JSON Schemas of its input and output, and annotations
// (behaviour hints and a display title). Other members (icons, _meta) are
// not linted.
type Tool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`

	// line is the 1-based line of the tool's name in the parsed document,
	// for SARIF regions; 0 when unknown.
	line int
}

// ErrInput is wrapped by Parse's errors.
var ErrInput = errors.New("not a tools/list result")

// listResult is a tools/list result.
type listResult struct {
	Tools *[]Tool `json:"tools"`
}

// rpcResponse is a JSON-RPC response carrying a tools/list result.
type rpcResponse struct {
	Result *listResult `json:"result"`
}

// Parse reads a tools/list result: {"tools": [...]}, the JSON-RPC response
// that carries one ({"jsonrpc": "2.0", "id": 1, "result": {"tools": [...]}}),
// or a bare array of tools. Every tool needs a name.
func Parse(r io.Reader) ([]Tool, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read tools: %w", err)
	}
	if len(data) > MaxInput {
		return nil, fmt.Errorf("read tools: %w: larger than %d bytes", ErrInput, MaxInput)
	}
	return ParseBytes(data)
}

// ParseBytes is Parse over a document in memory.
func ParseBytes(data []byte) ([]Tool, error) {
	data = bytes.TrimSpace(data)
	var tools []Tool
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &tools); err != nil {
			return nil, fmt.Errorf("parse tools: %w: %v", ErrInput, err)
		}
	default:
		var doc struct {
			listResult
			rpcResponse
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("parse tools: %w: %v", ErrInput, err)
		}
		switch {
		case doc.Tools != nil:
			tools = *doc.Tools
		case doc.Result != nil && doc.Result.Tools != nil:
			tools = *doc.Result.Tools
		default:
			return nil, fmt.Errorf("parse tools: %w: no \"tools\" array (want the result of tools/list, or the JSON-RPC response holding it)", ErrInput)
		}
	}
	for i := range tools {
		if tools[i].Name == "" {
			return nil, fmt.Errorf("parse tools: %w: tool %d has no name", ErrInput, i)
		}
	}
	locate(data, tools)
	return tools, nil
}

// locate sets each tool's line: where "name": "<its name>" first occurs
// after the previous tool's. A nested "name" (a schema property called
// name) before it is skipped because its value differs; when it does not
// differ, the line is still the tool's or close to it.
func locate(data []byte, tools []Tool) {
	from, line := 0, 1
	key := []byte(`"name"`)
	for i := range tools {
		for {
			j := bytes.Index(data[from:], key)
			if j < 0 {
				return
			}
			at := from + j
			line += bytes.Count(data[from:at], []byte{'\n'})
			from = at + len(key)
			k := from
			for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r' || data[k] == ':') {
				k++
			}
			if k >= len(data) || data[k] != '"' {
				continue
			}
			end := k + 1
			for end < len(data) && data[end] != '"' {
				if data[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(data) {
				return
			}
			var name string
			if json.Unmarshal(data[k:end+1], &name) == nil && name == tools[i].Name {
				tools[i].line = line
				break
			}
		}
	}
}

// text is one string of a tool that the lint reads, with where it is.
type text struct {
	// pointer is the RFC 6901 pointer of the string inside the tool:
	// "/description", "/inputSchema/properties/path/description"; a
	// property name is the pointer of its property with prop set.
	pointer string
	value   string
	prop    bool
	// schemaDesc is set for the description (or title) of a parameter.
	schemaDesc bool
}

// maxSchemaDepth bounds the schema walk (a hostile schema can nest deeply).
const maxSchemaDepth = 64

// texts returns the strings of a tool the lint reads: its name, title and
// description, its annotations' strings, and in its input and output schemas
// every property name, description, title, string default, enum, const and
// example.
func (t *Tool) texts() []text {
	out := []text{{pointer: "/name", value: t.Name}}
	if t.Title != "" {
		out = append(out, text{pointer: "/title", value: t.Title})
	}
	if t.Description != "" {
		out = append(out, text{pointer: "/description", value: t.Description})
	}
	for _, s := range []struct {
		name string
		raw  json.RawMessage
	}{{"/inputSchema", t.InputSchema}, {"/outputSchema", t.OutputSchema}, {"/annotations", t.Annotations}} {
		if len(s.raw) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(s.raw, &v); err != nil {
			// A schema that is not JSON cannot be here: the document
			// parsed. Keep its text so nothing is skipped.
			out = append(out, text{pointer: s.name, value: string(s.raw)})
			continue
		}
		out = walkSchema(out, s.name, v, 0, false)
	}
	return out
}

func walkSchema(out []text, ptr string, v any, depth int, inProps bool) []text {
	if depth > maxSchemaDepth {
		return out
	}
	switch v := v.(type) {
	case string:
		out = append(out, text{pointer: ptr, value: v})
	case []any:
		for i, e := range v {
			out = walkSchema(out, ptr+"/"+strconv.Itoa(i), e, depth+1, false)
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			p := ptr + "/" + pointerToken(k)
			if inProps {
				out = append(out, text{pointer: p, value: k, prop: true})
				out = walkSchema(out, p, v[k], depth+1, false)
				continue
			}
			switch k {
			case "properties", "patternProperties", "$defs", "definitions":
				out = walkSchema(out, p, v[k], depth+1, true)
			case "description", "title":
				if s, ok := v[k].(string); ok {
					out = append(out, text{pointer: p, value: s, schemaDesc: true})
				}
			case "type", "format", "$schema", "$ref", "$id", "required", "pattern":
				// Keywords, not prose.
			default:
				out = walkSchema(out, p, v[k], depth+1, false)
			}
		}
	}
	return out
}
