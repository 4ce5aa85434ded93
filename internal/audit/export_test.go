package audit

// ParseCanonicalForTest reports whether data decodes on the fast path.
func ParseCanonicalForTest(e *Event, data []byte) bool { return e.parseCanonical(data) }
