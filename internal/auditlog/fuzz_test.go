package auditlog_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/auditlog"
	"golang.org/x/mod/sumdb/note"
)

// FuzzParseCheckpoint checks that checkpoint text round-trips.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("writ.local/audit\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("writ.local/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("o\n012\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("o\n-1\nAA==\nextra\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := auditlog.ParseCheckpoint(text)
		if err != nil {
			return
		}
		if got := c.Text(); !bytes.Equal(got, text) {
			t.Fatalf("ParseCheckpoint accepted %q, which formats back as %q", text, got)
		}
	})
}

// FuzzOpenCheckpoint feeds signed notes (valid ones, and mutations of
// them) to OpenCheckpoint and ParseCheckpointNote.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "writ.local/audit")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	trusted, _ := auditlog.ParseVerifierKeys(vkey)
	for _, size := range []int64{0, 1, 1 << 40} {
		msg, err := auditlog.SignCheckpoint(auditlog.Checkpoint{Origin: "writ.local/audit", Size: size}, signer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Add([]byte("writ.local/audit\n1\nAA==\n\n— writ.local/audit AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := auditlog.OpenCheckpoint(msg, trusted)
		if err == nil {
			// A verified note's text is a canonical checkpoint.
			if _, err := auditlog.ParseCheckpoint(c.Text()); err != nil {
				t.Fatalf("verified checkpoint %+v does not re-parse: %v", c, err)
			}
		}
		auditlog.ParseCheckpointNote(msg)
	})
}

// FuzzInclusionProof checks that parsing and verifying a proof document
// from outside never panics.
func FuzzInclusionProof(f *testing.F) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "writ.local/audit")
	signer, _ := note.NewSigner(skey)
	trusted, _ := auditlog.ParseVerifierKeys(vkey)
	ev := sampleEvent(1)
	ev.ID, ev.Time = "evt_1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf, _ := ev.MarshalCanonical()
	msg, _ := auditlog.SignCheckpoint(auditlog.Checkpoint{Origin: "writ.local/audit", Size: 1}, signer)
	good, _ := json.Marshal(auditlog.InclusionProof{Index: 0, Event: ev, Leaf: string(leaf), Checkpoint: string(msg)})
	f.Add(good)
	f.Add([]byte(`{"index":-1,"leaf":"{}","checkpoint":"x","proof":[]}`))
	f.Add([]byte(`{"index":9223372036854775807,"leaf":"{}","checkpoint":"x\n\n— a AAAAAAA=\n","proof":["AAAA"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := auditlog.ParseInclusionProof(b)
		if err != nil {
			return
		}
		p.Verify(trusted)
	})
}
