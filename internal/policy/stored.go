package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/strictyaml"
)

// Stored is an AccessPolicy as a server keeps it: its name, the version
// the store gave it, and its spec as the JSON [EncodeSpec] returned.
type Stored struct {
	Name    string
	Version int64
	Spec    []byte
}

// EncodeSpec decodes an AccessPolicy document's spec strictly (unknown
// fields and wrong types are errors at FILE:LINE:COLUMN) and returns it as
// the JSON a server stores. It does not check what the spec means: that is
// [CompileAll]' job, which the server runs once over the whole set a
// change would produce.
func EncodeSpec(d resource.Document) ([]byte, error) {
	if d.Kind != resource.KindAccessPolicy {
		return nil, d.Errorf(d.Find("kind"), "kind", "%q is not an AccessPolicy", d.Kind)
	}
	spec, err := DecodeSpec(d)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec of %s: %w", d.Ref(), err)
	}
	return b, nil
}

// An Input is one AccessPolicy to compile: a document from a file
// ([FromDocument]) or a stored spec ([FromStored]).
type Input struct {
	doc     *resource.Document
	stored  *Stored
	version int64
}

// FromDocument is the policy in d, compiled under version (0: unversioned,
// as offline). Its errors name FILE:LINE:COLUMN and the field.
func FromDocument(d resource.Document, version int64) Input {
	return Input{doc: &d, version: version}
}

// FromStored is a stored policy. Its errors name name@version and the
// field, such as "email-drafter@3: spec.rules[2].when: ...".
func FromStored(s Stored) Input {
	return Input{stored: &s, version: s.Version}
}

// Name returns the policy's name.
func (s Input) Name() string {
	if s.doc != nil {
		return s.doc.Name
	}
	return s.stored.Name
}

// Version returns the version the policy compiles under.
func (s Input) Version() int64 { return s.version }

// where says where the policy comes from, for messages.
func (s Input) where() string {
	if s.doc != nil {
		return fmt.Sprintf("%s:%d", s.doc.File, s.doc.Line)
	}
	return "the store as " + policyRef(s.stored.Name, s.stored.Version)
}

func (s Input) duplicate(prev Input) error {
	msg := fmt.Sprintf("policy %q is also defined at %s; policy names must be unique", s.Name(), prev.where())
	if s.doc != nil {
		return s.doc.Errorf(s.doc.Find("metadata", "name"), "metadata.name", "%s", msg)
	}
	return &strictyaml.Error{File: policyRef(s.stored.Name, s.stored.Version), Field: "metadata.name", Msg: msg}
}

func (s Input) compile() (*cpolicy, []Warning, error) {
	if s.doc != nil {
		spec, err := DecodeSpec(*s.doc)
		if err != nil {
			return nil, nil, err
		}
		return docCompiler(s.doc).compileSpec(spec, s.doc.Name, s.version, s.doc.Line)
	}
	ref := policyRef(s.stored.Name, s.stored.Version)
	if !resource.ValidName(s.stored.Name) {
		return nil, nil, &strictyaml.Error{File: ref, Field: "metadata.name", Msg: "not a valid resource name"}
	}
	spec, err := decodeStoredSpec(s.stored.Spec)
	if err != nil {
		return nil, nil, &strictyaml.Error{File: ref, Field: "spec", Msg: "stored spec does not decode: " + err.Error()}
	}
	c := &compiler{file: ref, labels: map[string]bool{}, buckets: map[string]bucketDef{}}
	return c.compileSpec(spec, s.stored.Name, s.stored.Version, 0)
}

// decodeStoredSpec decodes a stored spec as strictly as a document's:
// unknown fields are errors, and so is anything after the object.
func decodeStoredSpec(b []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return &spec, nil
}

// CompileStored compiles stored policies, each under its stored version.
func CompileStored(ps []Stored) (*Snapshot, error) {
	srcs := make([]Input, len(ps))
	for i, p := range ps {
		srcs[i] = FromStored(p)
	}
	return CompileAll(srcs)
}

// policyRef is "name@version", or name when unversioned.
func policyRef(name string, version int64) string {
	if version <= 0 {
		return name
	}
	return name + "@" + strconv.FormatInt(version, 10)
}
