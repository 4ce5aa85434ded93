package mcplint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func addCorpusSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.json")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte(`[{"name":"a","description":"\u200b<IMPORTANT>x</IMPORTANT>","inputSchema":{"properties":{"sidenote":{"default":"\u001b[8m"}}}}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}}`))
}

// FuzzParse checks that any input is parsed or refused without a panic,
// and that every parsed tool has a name.
func FuzzParse(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tools, err := ParseBytes(data)
		if err != nil {
			return
		}
		for _, tl := range tools {
			if tl.Name == "" {
				t.Fatal("parsed a tool without a name")
			}
		}
	})
}

// FuzzLint checks that linting any parsed document does not panic, that
// spans lie within their field, and that evidence carries no invisible or
// control character.
func FuzzLint(f *testing.F) {
	addCorpusSeeds(f)
	l := testLinter(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tools, err := ParseBytes(data)
		if err != nil {
			return
		}
		rep := l.Lint(tools)
		fields := map[string]string{}
		for i := range tools {
			for _, tx := range tools[i].texts() {
				fields[tools[i].Name+"\x00"+tx.pointer] = tx.value
			}
		}
		for _, fd := range rep.Findings {
			v, ok := fields[fd.Tool+"\x00"+fd.Field]
			if !ok {
				t.Fatalf("finding in unknown field %s of %q", fd.Field, fd.Tool)
			}
			if fd.Start < 0 || fd.End > len(v) || fd.Start > fd.End {
				t.Fatalf("span [%d,%d) outside field %s of %d bytes", fd.Start, fd.End, fd.Field, len(v))
			}
			if !utf8.ValidString(fd.Evidence) && !strings.Contains(fd.Evidence, `\u`) {
				t.Fatalf("evidence %q is not UTF-8", fd.Evidence)
			}
			for _, c := range fd.Evidence {
				if isHidden(c) || isControl(c) {
					t.Fatalf("evidence %q holds %U", fd.Evidence, c)
				}
			}
		}
	})
}
