package mcp

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ManifestFormat is the format tag of a signed tool manifest.
const ManifestFormat = "writ-mcp-manifest/v1"

// Manifest is a publisher's signed statement of a server's tools: for each
// tool name, the digest of its descriptor (see [Descriptor.Digests]). It is
// written as JSON:
//
//	{
//	  "format": "writ-mcp-manifest/v1",
//	  "server": "filesystem",
//	  "tools": [{"name": "read_file", "digest": "sha256:..."}, ...],
//	  "signature": "BASE64"
//	}
//
// Tools are sorted by name. The signature is Ed25519, in standard base64,
// over the canonical JSON ([Canonical]) of the object without its
// "signature" member. Server is informational: the publisher's name for the
// server, which need not be the MCPServer's name in writ.
type Manifest struct {
	Format    string         `json:"format"`
	Server    string         `json:"server,omitempty"`
	Tools     []ManifestTool `json:"tools"`
	Signature string         `json:"signature,omitempty"`
}

// ManifestTool is one tool of a manifest.
type ManifestTool struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// MaxManifest bounds a manifest file, in bytes.
const MaxManifest = 4 << 20

// SignManifest builds the manifest of tools and signs it with key.
func SignManifest(server string, tools []Descriptor, key ed25519.PrivateKey) (*Manifest, error) {
	m := &Manifest{Format: ManifestFormat, Server: server, Tools: []ManifestTool{}}
	for _, t := range tools {
		d, _, err := t.Digests()
		if err != nil {
			return nil, fmt.Errorf("sign manifest: %w", err)
		}
		m.Tools = append(m.Tools, ManifestTool{Name: t.Name, Digest: d})
	}
	slices.SortFunc(m.Tools, func(a, b ManifestTool) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(m.Tools); i++ {
		if m.Tools[i].Name == m.Tools[i-1].Name {
			return nil, fmt.Errorf("sign manifest: tool %q is listed twice", m.Tools[i].Name)
		}
	}
	msg, err := m.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	return m, nil
}

// signedBytes is what the signature covers.
func (m *Manifest) signedBytes() ([]byte, error) {
	c := *m
	c.Signature = ""
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return Canonical(b)
}

// ParseManifest reads a manifest strictly: unknown members, a missing or
// unknown format, tools without a name or digest, or duplicate names are
// errors. It does not check the signature; see [Manifest.Verify].
func ParseManifest(raw []byte) (*Manifest, error) {
	if len(raw) > MaxManifest {
		return nil, fmt.Errorf("read manifest: %d bytes, more than the %d allowed", len(raw), MaxManifest)
	}
	if _, err := Canonical(raw); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("read manifest: format %q is not %s", m.Format, ManifestFormat)
	}
	for i, t := range m.Tools {
		if t.Name == "" || !strings.HasPrefix(t.Digest, "sha256:") || len(t.Digest) != len("sha256:")+64 {
			return nil, fmt.Errorf("read manifest: tool %d needs a name and a sha256: digest", i)
		}
		if i > 0 && m.Tools[i-1].Name >= t.Name {
			return nil, fmt.Errorf("read manifest: tool %q is out of order or listed twice; tools are sorted by name", t.Name)
		}
	}
	if m.Signature == "" {
		return nil, errors.New("read manifest: no signature; sign it with writ mcp sign")
	}
	return &m, nil
}

// ErrBadSignature reports a manifest whose signature does not verify
// under the publisher's key.
var ErrBadSignature = errors.New("the manifest's signature does not verify under the publisher key")

// Verify checks the manifest's signature under pub.
func (m *Manifest) Verify(pub ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("verify manifest: %w", ErrBadSignature)
	}
	msg, err := m.signedBytes()
	if err != nil {
		return fmt.Errorf("verify manifest: %w", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("verify manifest: %w", ErrBadSignature)
	}
	return nil
}

// Lookup returns the digest the manifest names for tool.
func (m *Manifest) Lookup(tool string) (string, bool) {
	i, ok := slices.BinarySearchFunc(m.Tools, tool, func(t ManifestTool, name string) int { return strings.Compare(t.Name, name) })
	if !ok {
		return "", false
	}
	return m.Tools[i].Digest, true
}
