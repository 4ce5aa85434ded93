package audit

import "net/url"

// EncodeLabels is the form of a caller's labels in an event's details
// (key subject_labels): URL-query encoded, keys sorted, "" for none.
// Events that record what a policy decision saw use it, so that `writ
// policy replay` can decide the request again (#16). Labels are names,
// never secrets.
func EncodeLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	v := url.Values{}
	for k, l := range labels {
		v.Set(k, l)
	}
	return v.Encode()
}
