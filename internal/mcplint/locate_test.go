package mcplint

import "testing"

// TestLocate checks the line found for each tool (SARIF regions): a nested
// "name" property is skipped, escapes and spacing around the colon are
// read.
func TestLocate(t *testing.T) {
	doc := "{\"tools\": [\n {\"name\": \"a\",\n  \"inputSchema\": {\"properties\": {\"name\": {\"type\": \"string\"}}}},\n {\"description\": \"x\",\n  \"name\" : \"b\\\"q\"},\n {\"name\":\"c\"}]}"
	tools, err := ParseBytes([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 5, 6}
	for i, tl := range tools {
		if tl.line != want[i] {
			t.Errorf("tool %q at line %d, want %d", tl.Name, tl.line, want[i])
		}
	}
}
