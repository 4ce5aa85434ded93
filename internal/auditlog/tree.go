package auditlog

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier is the right edge of a Merkle tree of size n: the hashes of the
// maximal complete subtrees that cover records [0, n), largest first. It is
// all that appending the next record and computing the root need, so the
// log keeps it in memory and never reads earlier hashes while appending.
//
// frontier implements tlog.HashReader for exactly those hashes, so the
// hashing itself is done by tlog.StoredHashes and tlog.TreeHash.
type frontier struct {
	size  int64
	nodes []frontierNode
}

type frontierNode struct {
	index int64 // stored-hash index, tlog.StoredHashIndex(level, n)
	hash  tlog.Hash
}

// frontierIndexes returns the stored-hash indexes of the frontier of a
// tree of size n, largest subtree first.
func frontierIndexes(n int64) []int64 {
	var out []int64
	lo := int64(0)
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, lo>>level))
			lo += 1 << level
		}
	}
	return out
}

// loadFrontier builds the frontier of a tree of size n from stored hashes.
func loadFrontier(n int64, r tlog.HashReader) (*frontier, error) {
	idx := frontierIndexes(n)
	hashes, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(idx) {
		return nil, fmt.Errorf("read tree edge: got %d hashes for %d indexes", len(hashes), len(idx))
	}
	f := &frontier{size: n}
	for i := range idx {
		f.nodes = append(f.nodes, frontierNode{idx[i], hashes[i]})
	}
	return f, nil
}

// ReadHashes implements tlog.HashReader for the hashes on the frontier.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
next:
	for i, x := range indexes {
		for _, n := range f.nodes {
			if n.index == x {
				out[i] = n.hash
				continue next
			}
		}
		return nil, fmt.Errorf("tree edge of size %d has no stored hash %d", f.size, x)
	}
	return out, nil
}

// append adds the record with leaf hash leaf at index f.size and returns
// the hashes to store for it (tlog.StoredHashesForRecordHash).
func (f *frontier) append(leaf tlog.Hash) ([]tlog.Hash, error) {
	n := f.size
	hashes, err := tlog.StoredHashesForRecordHash(n, leaf, f)
	if err != nil {
		return nil, err
	}
	// The record completed subtrees of levels 1..m, consuming the m
	// smallest frontier nodes; the new level-m subtree replaces them.
	m := bits.TrailingZeros64(uint64(n + 1))
	f.nodes = append(f.nodes[:len(f.nodes)-m], frontierNode{tlog.StoredHashIndex(m, n>>m), hashes[m]})
	f.size++
	return hashes, nil
}

// root returns the RFC 6962 root hash of the tree: the frontier hashes
// folded from the right, as tlog.TreeHash does.
func (f *frontier) root() tlog.Hash {
	if len(f.nodes) == 0 {
		h, _ := tlog.TreeHash(0, nil) // the empty tree: reads nothing
		return h
	}
	h := f.nodes[len(f.nodes)-1].hash
	for i := len(f.nodes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.nodes[i].hash, h)
	}
	return h
}

func (f *frontier) clone() *frontier {
	return &frontier{size: f.size, nodes: append([]frontierNode(nil), f.nodes...)}
}
