package secrets

// keywordMatcher finds every occurrence of a set of keywords in one pass:
// an Aho-Corasick automaton compiled to a DFA whose alphabet is the bytes
// the keywords hold (a byte no keyword holds sends every state to the
// root). For the rules' ~400 keywords it is about 1,300 states of ~40
// classes, 0.2 MB, where a table of 256 transitions a state (the
// aho-corasick module gitleaks uses) is 2.6 MB that every garbage
// collection marks. It reports what that module's Walk reports, in the
// same order (TestKeywordMatcherAgrees, FuzzKeywordMatcher).
type keywordMatcher struct {
	class  [256]uint8 // byte → class; 0: in no keyword
	nclass int
	delta  []int32 // state*nclass + class → state
	// The keywords that end in state s, longest first, are
	// out[outAt[s]:outAt[s+1]].
	outAt []int32
	out   []int32
	lens  []int32 // keyword → its length
}

// newKeywordMatcher compiles keywords; a keyword's index in keywords is the
// pattern its matches report. Empty keywords never match.
func newKeywordMatcher(keywords []string) *keywordMatcher {
	m := &keywordMatcher{nclass: 1, lens: make([]int32, len(keywords))}
	for i, k := range keywords {
		m.lens[i] = int32(len(k))
		for j := 0; j < len(k); j++ {
			if m.class[k[j]] == 0 {
				m.class[k[j]] = uint8(m.nclass)
				m.nclass++
			}
		}
	}
	nc := m.nclass
	// The trie: delta holds -1 where the trie has no edge; own[s] is the
	// keyword spelled by the path to s (-1: none).
	delta := make([]int32, nc)
	for i := range delta {
		delta[i] = -1
	}
	own := []int32{-1}
	for i, k := range keywords {
		if k == "" {
			continue
		}
		s := int32(0)
		for j := 0; j < len(k); j++ {
			c := int32(m.class[k[j]])
			if delta[s*int32(nc)+c] < 0 {
				delta[s*int32(nc)+c] = int32(len(own))
				own = append(own, -1)
				for range nc {
					delta = append(delta, -1)
				}
			}
			s = delta[s*int32(nc)+c]
		}
		if own[s] < 0 { // a repeated keyword reports its first index
			own[s] = int32(i)
		}
	}
	// Breadth first, each state's failure link is the longest proper
	// suffix of its path that is in the trie; a missing edge takes the
	// failure link's, and a state's keywords are its own then its failure
	// link's (longest first).
	n := len(own)
	fail := make([]int32, n)
	outs := make([][]int32, n)
	queue := make([]int32, 0, n)
	for c := range nc {
		if t := delta[c]; t < 0 {
			delta[c] = 0
		} else {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if own[s] >= 0 {
			outs[s] = append(outs[s], own[s])
		}
		outs[s] = append(outs[s], outs[fail[s]]...)
		for c := range int32(nc) {
			t := delta[s*int32(nc)+c]
			f := delta[fail[s]*int32(nc)+c]
			if t < 0 {
				delta[s*int32(nc)+c] = f
				continue
			}
			fail[t] = f
			queue = append(queue, t)
		}
	}
	m.delta = delta
	m.outAt = make([]int32, n+1)
	for s, o := range outs {
		m.out = append(m.out, o...)
		m.outAt[s+1] = int32(len(m.out))
	}
	return m
}

// Walk calls fn for every occurrence of a keyword in input: end is the
// index of its last byte, n its length, pattern its index. It stops when
// fn returns false.
func (m *keywordMatcher) Walk(input []byte, fn func(end, n, pattern int64) bool) {
	s := int32(0)
	nc := int32(m.nclass)
	for i, b := range input {
		s = m.delta[s*nc+int32(m.class[b])]
		for _, p := range m.out[m.outAt[s]:m.outAt[s+1]] {
			if !fn(int64(i), int64(m.lens[p]), int64(p)) {
				return
			}
		}
	}
}
