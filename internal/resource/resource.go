// Package resource parses writ's declarative documents: YAML files holding
// one or more documents of the form
//
//	apiVersion: writ.dev/v1
//	kind: Identity | AccessPolicy | PolicyTest | Service | MCPServer | ToolLabels
//	metadata: {name: ..., labels: {...}}
//	spec: {...}
//
// [Parse] splits a stream into [Document] values that keep the YAML nodes, so
// the package that owns a kind can decode its spec strictly with
// [Document.DecodeSpec] and report any error with file, line, column and
// field. This package knows the envelope, not the kinds' semantics.
package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// APIVersion is the only apiVersion writ accepts today.
const APIVersion = "writ.dev/v1"

// Known kinds.
const (
	KindIdentity     = "Identity"
	KindAccessPolicy = "AccessPolicy"
	KindPolicyTest   = "PolicyTest"
	KindService      = "Service"
	KindMCPServer    = "MCPServer"
	KindToolLabels   = "ToolLabels"
)

// Kinds lists every kind writ knows, for error messages.
var Kinds = []string{KindIdentity, KindAccessPolicy, KindPolicyTest, KindService, KindMCPServer, KindToolLabels}

// MaxFileSize bounds one input file; larger files are refused.
const MaxFileSize = 8 << 20

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$`)

// Document is one parsed document.
type Document struct {
	APIVersion string
	Kind       string
	Name       string
	Labels     map[string]string
	File       string
	Line       int
	// Node is the document's root mapping; Spec its spec value (may be nil).
	Node *yaml.Node
	Spec *yaml.Node
}

// Ref returns "Kind/name" for messages.
func (d Document) Ref() string { return d.Kind + "/" + d.Name }

// DecodeSpec decodes the spec strictly into out; errors name file, line,
// column and the field path under "spec".
func (d Document) DecodeSpec(out any) error {
	if d.Spec == nil {
		return &strictyaml.Error{File: d.File, Line: d.Line, Field: "spec", Msg: "missing; every " + d.Kind + " needs a spec"}
	}
	return strictyaml.Decode(d.File, d.Spec, "spec", out)
}

// Errorf returns an error positioned at node (or at the document when node
// is nil) for field.
func (d Document) Errorf(node *yaml.Node, field, format string, args ...any) error {
	if node == nil {
		node = d.Node
	}
	return strictyaml.At(d.File, node, field, format, args...)
}

// Find returns the node at a path of mapping keys and sequence indexes
// below the document root, e.g. Find("spec", "rules", "2", "when"), or nil.
func (d Document) Find(path ...string) *yaml.Node {
	n := d.Node
	for _, p := range path {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					break
				}
			}
			n = next
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscanf(p, "%d", &idx); err != nil || idx < 0 || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
		default:
			return nil
		}
	}
	return n
}

type envelope struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

// Parse splits data (from file, used in messages) into documents and checks
// each envelope. Empty documents are skipped.
func Parse(file string, data []byte) ([]Document, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d allowed", file, len(data), MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []Document
	seen := map[string]int{}
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(file, err)
		}
		if len(root.Content) == 0 {
			continue
		}
		n := root.Content[0]
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue
		}
		var env envelope
		if err := strictyaml.Decode(file, n, "", &env); err != nil {
			return nil, err
		}
		d := Document{APIVersion: env.APIVersion, Kind: env.Kind, Name: env.Metadata.Name, Labels: env.Metadata.Labels,
			File: file, Line: n.Line, Node: n}
		if env.Spec.Kind != 0 {
			d.Spec = d.Find("spec")
		}
		if err := d.checkEnvelope(); err != nil {
			return nil, err
		}
		if prev, dup := seen[d.Ref()]; dup {
			return nil, d.Errorf(d.Find("metadata", "name"), "metadata.name", "%s is defined twice in this file (first at line %d)", d.Ref(), prev)
		}
		seen[d.Ref()] = d.Line
		docs = append(docs, d)
	}
	return docs, nil
}

func (d Document) checkEnvelope() error {
	switch {
	case d.APIVersion == "":
		return d.Errorf(nil, "apiVersion", "missing; set apiVersion: %s", APIVersion)
	case d.APIVersion != APIVersion:
		return d.Errorf(d.Find("apiVersion"), "apiVersion", "%q is not supported; use %s", d.APIVersion, APIVersion)
	case d.Kind == "":
		return d.Errorf(nil, "kind", "missing; one of %s", strings.Join(Kinds, ", "))
	case !slices.Contains(Kinds, d.Kind):
		return d.Errorf(d.Find("kind"), "kind", "%q is not a kind writ knows; one of %s", d.Kind, strings.Join(Kinds, ", "))
	case d.Name == "":
		return d.Errorf(nil, "metadata.name", "missing; every document needs a name")
	case !nameRE.MatchString(d.Name):
		return d.Errorf(d.Find("metadata", "name"), "metadata.name",
			"%q is not a valid name: use 1-128 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", d.Name)
	}
	return nil
}

// ValidName reports whether s is a valid resource name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Load parses every path: a file, or a directory whose *.yaml and *.yml
// files (not recursive) are read in name order.
func Load(paths ...string) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readLimited(f)
			if err != nil {
				return nil, err
			}
			ds, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		}
	}
	return docs, nil
}

func expand(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	var out []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, filepath.Join(p, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read directory %s: no .yaml or .yml files in it", p)
	}
	return out, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &strictyaml.Error{File: file, Msg: "invalid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			fmt.Sscanf(n, "%d", &e.Line)
			e.Msg = "invalid YAML: " + tail
		}
	}
	return e
}
