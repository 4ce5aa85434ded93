package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// IdentitySpec is the spec of a kind: Identity document.
//
//	apiVersion: writ.dev/v1
//	kind: Identity
//	metadata:
//	  name: email-drafter
//	  labels: {team: mail, owner: alice}
//	spec:
//	  spiffe_id: spiffe://writ.local/agent/email-drafter
//	  selectors: [unix:uid:1001, "unix:sha256:ab12..."]
//	  x509_ttl: 30m   # optional; default from ca.x509_svid_ttl
//	  jwt_ttl: 5m     # optional; default from ca.jwt_svid_ttl
type IdentitySpec struct {
	SpiffeID  string        `yaml:"spiffe_id" json:"spiffe_id"`
	Selectors []string      `yaml:"selectors" json:"selectors"`
	X509TTL   time.Duration `yaml:"x509_ttl" json:"x509_ttl,omitempty"`
	JWTTTL    time.Duration `yaml:"jwt_ttl" json:"jwt_ttl,omitempty"`
}

// FromDocument decodes and validates an Identity document. Errors name the
// file, line, column and field.
func (r *Registry) FromDocument(d resource.Document) (store.Entry, error) {
	if d.Kind != resource.KindIdentity {
		return store.Entry{}, d.Errorf(d.Find("kind"), "kind", "want Identity, got %s", d.Kind)
	}
	var spec IdentitySpec
	if err := d.DecodeSpec(&spec); err != nil {
		return store.Entry{}, err
	}
	id := store.Entry{Name: d.Name, SpiffeID: spec.SpiffeID, X509TTL: spec.X509TTL, JWTTTL: spec.JWTTTL, Labels: d.Labels}
	for i, s := range spec.Selectors {
		typ, val, ok := strings.Cut(s, ":")
		if !ok {
			return store.Entry{}, d.Errorf(d.Find("spec", "selectors", fmt.Sprint(i)), fmt.Sprintf("spec.selectors[%d]", i),
				"%q is not a selector; write type:key:value, e.g. unix:uid:1000", s)
		}
		id.Selectors = append(id.Selectors, store.Selector{Type: typ, Value: val})
	}
	if err := r.Validate(&id); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			return store.Entry{}, err
		}
		path := []string{"spec", fe.Field}
		field := "spec." + fe.Field
		switch {
		case fe.Field == "name":
			path, field = []string{"metadata", "name"}, "metadata.name"
		case fe.Field == "labels":
			path, field = []string{"metadata", "labels"}, "metadata.labels"
		case fe.Index >= 0:
			base, _, _ := strings.Cut(fe.Field, "[")
			path = []string{"spec", base, fmt.Sprint(fe.Index)}
		}
		return store.Entry{}, d.Errorf(d.Find(path...), field, "%s", fe.Msg)
	}
	return id, nil
}
