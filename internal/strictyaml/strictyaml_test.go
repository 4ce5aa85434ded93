package strictyaml

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type rule struct {
	Name   string        `yaml:"name"`
	Budget int           `yaml:"budget,omitempty"`
	Share  uint8         `yaml:"share,omitempty"`
	Weight float64       `yaml:"weight,omitempty"`
	On     bool          `yaml:"on,omitempty"`
	TTL    time.Duration `yaml:"ttl,omitempty"`
	Tags   []string      `yaml:"tags,omitempty"`
}

type doc struct {
	Spec struct {
		Rules []rule `yaml:"rules"`
	} `yaml:"spec"`
}

func TestUnmarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"wrong type int", "spec:\n  rules:\n    - {name: a, budget: lots}\n",
			`f.yaml:3:25: spec.rules[0].budget: want an integer (int), got "lots"`},
		{"wrong type block", "spec:\n  rules:\n    - name: a\n    - name: b\n      budget: 1.5\n",
			`f.yaml:5:15: spec.rules[1].budget: want an integer (int), got "1.5"`},
		{"overflow", "spec: {rules: [{name: a, share: 300}]}\n",
			`f.yaml:1:33: spec.rules[0].share: want a non-negative integer (uint8), got "300"`},
		{"negative uint", "spec: {rules: [{name: a, share: -1}]}\n",
			`f.yaml:1:33: spec.rules[0].share: want a non-negative integer (uint8), got "-1"`},
		{"bool", "spec: {rules: [{name: a, on: maybe}]}\n",
			`f.yaml:1:30: spec.rules[0].on: want true or false, got "maybe"`},
		{"float", "spec: {rules: [{name: a, weight: heavy}]}\n",
			`f.yaml:1:34: spec.rules[0].weight: want a number, got "heavy"`},
		{"duration", "spec: {rules: [{name: a, ttl: 5 minutes}]}\n",
			`f.yaml:1:31: spec.rules[0].ttl: "5 minutes" is not a duration`},
		{"unknown field", "spec: {rules: [{name: a, budgit: 1}]}\n",
			`f.yaml:1:26: spec.rules[0].budgit: unknown field; known fields are budget, name, on, share, tags, ttl, weight`},
		{"list for scalar", "spec: {rules: [{name: [a]}]}\n",
			`f.yaml:1:23: spec.rules[0].name: want a single value (string), got a list`},
		{"scalar for list", "spec: {rules: [{name: a, tags: x}]}\n",
			`f.yaml:1:32: spec.rules[0].tags: want a list, got the value "x"`},
		{"duplicate key", "spec: {rules: [{name: a, name: b}]}\n",
			`f.yaml:1:26: spec.rules[0].name: key appears twice`},
		{"merge key", "spec: {rules: [{<<: {name: a}}]}\n",
			`f.yaml:1:17: spec.rules[0]: merge keys (<<) are not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out doc
			err := Unmarshal("f.yaml", []byte(tc.src), &out)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v (%T), want *Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestUnmarshalAccepts(t *testing.T) {
	var out doc
	src := "spec:\n  rules:\n    - {name: a, budget: 0x10, share: 255, weight: 1e3, on: true, ttl: 90s, tags: [x]}\n    - {name: b, budget: null, on: ~}\n"
	if err := Unmarshal("f.yaml", []byte(src), &out); err != nil {
		t.Fatal(err)
	}
	r := out.Spec.Rules
	if len(r) != 2 || r[0].Budget != 16 || r[0].Share != 255 || r[0].Weight != 1000 || !r[0].On || r[0].TTL != 90*time.Second || r[1].Budget != 0 {
		t.Fatalf("decoded %+v", r)
	}
}

// FuzzUnmarshal checks that hostile input never panics and that every
// error is an *Error with a message, positioned whenever the input parsed.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		"spec:\n  rules:\n    - {name: a, budget: lots}\n",
		"spec: {rules: [{name: a, share: 300, on: yes, ttl: 1h, weight: .5}]}\n",
		"spec: &a {rules: *a}\n",
		"spec: {rules: [{<<: {name: a}}]}\n",
		"spec: !!binary aGk=\n",
		"- [",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out doc
		err := Unmarshal("f.yaml", data, &out)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Msg == "" {
			t.Fatalf("error %v (%T) is not a positioned *Error", err, err)
		}
	})
}
