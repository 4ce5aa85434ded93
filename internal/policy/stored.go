package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// StoredSpec validates an AccessPolicy document completely and returns its
// spec as the JSON the server stores in [store.Resource.Spec].
func StoredSpec(d resource.Document) ([]byte, error) {
	if err := ValidateDocument(d); err != nil {
		return nil, err
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

// StoredDocument rebuilds an AccessPolicy document from a stored spec, so
// that it compiles exactly like the file it came from. Error positions then
// refer to line 4 of a synthetic document named "AccessPolicy/NAME@VERSION".
func StoredDocument(name string, version int64, spec []byte) (resource.Document, error) {
	if !resource.ValidName(name) {
		return resource.Document{}, fmt.Errorf("load stored policy %q: not a valid resource name", name)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, spec); err != nil {
		return resource.Document{}, fmt.Errorf("load stored policy %s: spec is not JSON: %w", name, err)
	}
	src := "apiVersion: " + resource.APIVersion + "\nkind: " + resource.KindAccessPolicy +
		"\nmetadata: {name: " + name + "}\nspec: " + compact.String() + "\n"
	file := resource.KindAccessPolicy + "/" + name + "@" + strconv.FormatInt(version, 10)
	docs, err := resource.Parse(file, []byte(src))
	if err != nil {
		return resource.Document{}, err
	}
	if len(docs) != 1 {
		return resource.Document{}, fmt.Errorf("load stored policy %s: got %d documents", name, len(docs))
	}
	return docs[0], nil
}

// CompileStored compiles the stored AccessPolicy resources (other kinds
// are skipped), each under its stored version.
func CompileStored(rs []store.Resource) (*Snapshot, error) {
	var docs []resource.Document
	versions := map[string]int64{}
	var errs []error
	for _, r := range rs {
		if r.Kind != resource.KindAccessPolicy {
			continue
		}
		d, err := StoredDocument(r.Name, r.Version, r.Spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		docs = append(docs, d)
		versions[r.Name] = r.Version
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return Compile(docs, versions)
}
