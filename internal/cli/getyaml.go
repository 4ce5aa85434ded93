package cli

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/resource"
	"go.yaml.in/yaml/v3"
)

// writeYAML prints resources as the documents `writ apply -f` reads, so
// that `writ get KIND NAME -o yaml | writ apply -f -` changes nothing.
// Several resources are separated by "---".
func writeYAML(w io.Writer, list []apitypes.Resource) error {
	var buf bytes.Buffer
	for i, r := range list {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := resourceYAML(r)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func resourceYAML(r apitypes.Resource) ([]byte, error) {
	// JSON is YAML: decoding the spec as a YAML node keeps its key order
	// and the type of every scalar (an integer stays an integer).
	var spec yaml.Node
	if err := yaml.Unmarshal(r.Spec, &spec); err != nil {
		return nil, fmt.Errorf("%s/%s: decode spec: %w", r.Kind, r.Name, err)
	}
	if spec.Kind == yaml.DocumentNode && len(spec.Content) == 1 {
		spec = *spec.Content[0]
	}
	blockStyle(&spec)
	if r.Kind == resource.KindIdentity {
		durationsAsText(&spec, "x509_ttl", "jwt_ttl")
	}
	meta := &yaml.Node{Kind: yaml.MappingNode}
	meta.Content = append(meta.Content, str("name"), str(r.Name))
	if len(r.Labels) > 0 {
		var labels yaml.Node
		if err := labels.Encode(r.Labels); err != nil {
			return nil, err
		}
		meta.Content = append(meta.Content, str("labels"), &labels)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("apiVersion"), str(resource.APIVersion),
		str("kind"), str(r.Kind),
		str("metadata"), meta,
		str("spec"), &spec,
	}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("%s/%s: encode YAML: %w", r.Kind, r.Name, err)
	}
	enc.Close()
	return buf.Bytes(), nil
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// blockStyle drops the flow and quoting styles the JSON input gave n.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// durationsAsText rewrites the integer nanoseconds of the given keys of
// mapping n as durations such as 30m, as a person writes them.
func durationsAsText(n *yaml.Node, keys ...string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for _, want := range keys {
			if k.Value != want || v.Tag != "!!int" {
				continue
			}
			var ns int64
			if v.Decode(&ns) == nil {
				*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: time.Duration(ns).String()}
			}
		}
	}
}
