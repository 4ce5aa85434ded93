package proxy

import (
	"maps"
	"net/http"
	"regexp"
	"testing"
)

func TestRequestID(t *testing.T) {
	re := regexp.MustCompile(`^req_[A-Z2-7]{16}$`)
	a, b := newRequestID(), newRequestID()
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Errorf("request ids %q, %q", a, b)
	}
}

func TestPolicyHeaders(t *testing.T) {
	got := policyHeaders(http.Header{"User-Agent": {"agent/1"}, "X-Custom-Thing": {"a", "b"},
		"Authorization": {"Bearer x"}, "Cookie": {"c"}, "Writ-Task": {"task_1"}})
	want := map[string]string{"user-agent": "agent/1", "x-custom-thing": "a, b", "writ-task": "task_1"}
	if !maps.Equal(got, want) {
		t.Errorf("policyHeaders = %v, want %v", got, want)
	}
}
