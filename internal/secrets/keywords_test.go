package secrets

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
)

// walks is every report of a Walk, in order.
func walks(walk func([]byte, func(end, n, pattern int64) bool), in []byte) []string {
	var out []string
	walk(in, func(end, n, pattern int64) bool {
		out = append(out, fmt.Sprintf("%d/%d/%d", end, n, pattern))
		return true
	})
	return out
}

// agree fails t unless the matcher and the aho-corasick module report the
// same matches of keywords in each input, in the same order.
func agree(t *testing.T, keywords []string, inputs ...[]byte) {
	t.Helper()
	m := newKeywordMatcher(keywords)
	ref := ahocorasick.NewTrieBuilder().AddStrings(keywords).Build()
	for _, in := range inputs {
		got := walks(m.Walk, in)
		want := walks(func(in []byte, fn func(end, n, pattern int64) bool) { ref.Walk(in, fn) }, in)
		if !slices.Equal(got, want) {
			t.Fatalf("keywords %q, input %q:\n got  %v\n want %v", keywords, in, got, want)
		}
	}
}

// distinct drops empty and repeated keywords (the detector passes none).
func distinct(ks []string) []string {
	var out []string
	for _, k := range ks {
		if k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// ruleKeywords is every keyword of rs's rules, once each.
func ruleKeywords(rs *ruleSet) []string {
	var ks []string
	for _, r := range rs.rules {
		ks = append(ks, r.keywords...)
	}
	return distinct(ks)
}

// TestKeywordMatcherAgrees: over the rules' own keywords and random sets
// of overlapping ones (prefixes, suffixes, keywords inside keywords), the
// matcher reports every occurrence the aho-corasick module does, in its
// order.
func TestKeywordMatcherAgrees(t *testing.T) {
	rs, err := compileRuleSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	keywords := ruleKeywords(rs)
	corpus := []byte(strings.Join(keywords, " ") + " token=ghp_" + fake("ghp", alnum, 36) + " AKIAIOSFODNN7EXAMPLE xoxb-1-2 sk_live_x \x00\xff")
	agree(t, keywords, corpus, []byte(""), []byte("no keyword here"), []byte(strings.ToLower(string(corpus))))

	r := rand.New(rand.NewPCG(9, 9))
	for range 300 {
		alphabet := "abcab"[:2+r.IntN(4)]
		var ks []string
		for range 1 + r.IntN(12) {
			var b strings.Builder
			for range 1 + r.IntN(5) {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
			ks = append(ks, b.String())
		}
		in := make([]byte, r.IntN(64))
		for i := range in {
			in[i] = "abcx"[r.IntN(4)]
		}
		agree(t, distinct(ks), in)
	}
}

// TestKeywordMatcherStops: Walk stops when its function returns false.
func TestKeywordMatcherStops(t *testing.T) {
	m := newKeywordMatcher([]string{"a", "aa"})
	n := 0
	m.Walk([]byte("aaaa"), func(end, _, _ int64) bool { n++; return end < 1 })
	if n != 2 {
		t.Fatalf("Walk called fn %d times after it returned false at the second match, want 2", n)
	}
}

// TestKeywordMatcherSize: the matcher of the rules' keywords is a tenth of
// the 256-wide table's size, or it has lost its reason to exist.
func TestKeywordMatcherSize(t *testing.T) {
	rs, err := compileRuleSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := rs.trie
	size := 4 * (len(m.delta) + len(m.outAt) + len(m.out) + len(m.lens))
	states := len(m.outAt) - 1
	if wide := states * 256 * 8; size*10 > wide {
		t.Fatalf("matcher of %d states is %d bytes; a 256-wide table is %d", states, size, wide)
	}
	t.Logf("%d keywords, %d states, %d classes: %d bytes", len(ruleKeywords(rs)), states, m.nclass, size)
}

func FuzzKeywordMatcher(f *testing.F) {
	f.Add("he,she,his,hers", []byte("ushers"))
	f.Add("a,ab,bab,bc,bca,c,caa", []byte("abccab"))
	f.Add("aws,akia,secret", []byte("AWS_SECRET akia\x00"))
	f.Fuzz(func(t *testing.T, keywords string, in []byte) {
		ks := distinct(strings.Split(keywords, ","))
		if len(ks) > 64 || len(in) > 4096 {
			return
		}
		agree(t, ks, in)
	})
}
