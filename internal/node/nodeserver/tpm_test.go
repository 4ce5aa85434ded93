package nodeserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/store"
)

// tpmRounds runs the two rounds of a TPM join through the node API and
// returns the second round's request and its answer.
func (e *env) tpmRounds(t testing.TB, prover *nodeattest.TPMProver, name string) (nodeapi.AttestRequest, int, string) {
	t.Helper()
	ctx := context.Background()
	var ch nodeapi.Challenge
	json.Unmarshal(e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil).Body.Bytes(), &ch)
	key := pubKey(t)
	nch := nodeattest.Challenge{Nonce: ch.Nonce, Key: key}
	p1, err := prover.Prove(ctx, nch)
	if err != nil {
		t.Fatal(err)
	}
	req := nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: key, Attestor: "tpm", Payload: p1, Name: name}
	w := e.do(ctx, "POST", nodeapi.PathActivate, req, nil)
	if w.Code != 200 {
		prover.Abort()
		return req, w.Code, w.Body.String()
	}
	var act nodeapi.ActivateAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &act); err != nil {
		t.Fatal(err)
	}
	if req.Payload, err = prover.Answer(ctx, nch, act.Challenge); err != nil {
		t.Fatal(err)
	}
	w = e.do(ctx, "POST", nodeapi.PathAttest, req, nil)
	return req, w.Code, w.Body.String()
}

func TestTPMJoin(t *testing.T) {
	ctx := context.Background()
	tp := keystest.SWTPM(t)
	ekHash, err := nodeattest.TPMEKHash(tp.Config())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}})
	prover := &nodeattest.TPMProver{Config: tp.Config()}

	// An entry gated on TPM attestation, and one on this very TPM.
	for _, en := range []store.Entry{
		{Name: "tpm-only", SpiffeID: "spiffe://writ.local/agent/tpm-only", Selectors: []store.Selector{{Type: "unix", Value: "uid:1"}, {Type: "node", Value: "attestor:tpm"}}},
		{Name: "this-tpm", SpiffeID: "spiffe://writ.local/agent/this-tpm", Selectors: []store.Selector{{Type: "unix", Value: "uid:1"}, {Type: "node", Value: "tpm:ek:" + ekHash}}},
	} {
		if _, err := e.reg.Create(ctx, "test", en); err != nil {
			t.Fatal(err)
		}
	}

	req, code, body := e.tpmRounds(t, prover, "host-tpm")
	if code != 200 {
		t.Fatalf("TPM join: %d %s", code, body)
	}
	n, err := e.db.GetNode(ctx, "host-tpm")
	if err != nil || n.Attestor != "tpm" || !slices.Contains(n.Selectors, store.Selector{Type: "tpm", Value: "ek:" + ekHash}) {
		t.Fatalf("node record %+v, %v", n, err)
	}

	// The second round is good once.
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "nonce") {
		t.Errorf("replayed second round: %d %s", w.Code, w.Body)
	}

	// The same TPM joins again under its name (a restarted host).
	if _, code, body = e.tpmRounds(t, prover, "host-tpm"); code != 200 {
		t.Fatalf("the same TPM again: %d %s", code, body)
	}
	var ans nodeapi.SVIDAnswer
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	tpmChain := parseChain(t, ans.Chain)

	// Gated issuance: the TPM node gets both; a join-token node neither.
	jtChain := e.join(t, "host-jt")
	waitRegistered(t, e, "spiffe://writ.local/agent/tpm-only", "spiffe://writ.local/agent/this-tpm")
	for _, id := range []string{"spiffe://writ.local/agent/tpm-only", "spiffe://writ.local/agent/this-tpm"} {
		if w := e.do(ctx, "POST", nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: id, PublicKey: pubKey(t)}, tpmChain); w.Code != 200 {
			t.Errorf("%s on the TPM node: %d %s", id, w.Code, w.Body)
		}
		if w := e.do(ctx, "POST", nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: id, PublicKey: pubKey(t)}, jtChain); w.Code != http.StatusForbidden ||
			!strings.Contains(w.Body.String(), "require node selectors") {
			t.Errorf("%s on the join-token node: %d %s", id, w.Code, w.Body)
		}
	}
}

func waitRegistered(t *testing.T, e *env, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for !e.pub.Registered(id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never published", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestTPMJoinRefused(t *testing.T) {
	ctx := context.Background()
	tp := keystest.SWTPM(t)
	ekHash, err := nodeattest.TPMEKHash(tp.Config())
	if err != nil {
		t.Fatal(err)
	}
	prover := &nodeattest.TPMProver{Config: tp.Config()}

	// An EK not on the list: refused in the first round, and audited.
	e := newEnv(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{strings.Repeat("0", 64): true}})
	if _, code, body := e.tpmRounds(t, prover, "host-x"); code != http.StatusForbidden || !strings.Contains(body, "EK sha256:"+ekHash+" is not allowed") {
		t.Fatalf("unlisted EK: %d %s", code, body)
	}
	if !slices.ContainsFunc(e.rec.Events(), func(ev audit.Event) bool { return ev.Type == audit.NodeRefused && strings.Contains(ev.Reason, ekHash) }) {
		t.Errorf("no node.refused event for the unlisted EK")
	}

	e = newEnv(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}})
	round1 := func() (nodeapi.AttestRequest, nodeattest.Challenge, []byte) {
		var ch nodeapi.Challenge
		json.Unmarshal(e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil).Body.Bytes(), &ch)
		nch := nodeattest.Challenge{Nonce: ch.Nonce, Key: pubKey(t)}
		p1, err := prover.Prove(ctx, nch)
		if err != nil {
			t.Fatal(err)
		}
		req := nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: nch.Key, Attestor: "tpm", Payload: p1, Name: "host-y"}
		w := e.do(ctx, "POST", nodeapi.PathActivate, req, nil)
		if w.Code != 200 {
			t.Fatalf("round 1: %d %s", w.Code, w.Body)
		}
		var act nodeapi.ActivateAnswer
		json.Unmarshal(w.Body.Bytes(), &act)
		return req, nch, act.Challenge
	}

	// One first round per challenge.
	req, _, _ := round1()
	if w := e.do(ctx, "POST", nodeapi.PathActivate, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "begun on it already") {
		t.Errorf("second first round: %d %s", w.Code, w.Body)
	}
	prover.Abort()

	// The second round for another SVID key than the first.
	req, nch, c := round1()
	p2, err := prover.Answer(ctx, nch, c)
	if err != nil {
		t.Fatal(err)
	}
	req.Payload, req.PublicKey = p2, pubKey(t)
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "another attestor or public key") {
		t.Errorf("second round for another key: %d %s", w.Code, w.Body)
	}

	// The second round after the challenge expired.
	req, nch, c = round1()
	if req.Payload, err = prover.Answer(ctx, nch, c); err != nil {
		t.Fatal(err)
	}
	e.skew = 2 * time.Minute
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "expired") {
		t.Errorf("second round after expiry: %d %s", w.Code, w.Body)
	}
	e.skew = 0

	// The second round sent as a one-round join token: refused (the
	// challenge was begun by tpm).
	req, nch, c = round1()
	if req.Payload, err = prover.Answer(ctx, nch, c); err != nil {
		t.Fatal(err)
	}
	req.Attestor = "join_token"
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "another attestor") {
		t.Errorf("second round under another attestor: %d %s", w.Code, w.Body)
	}

	// The TPM's second round without a first: refused.
	var ch nodeapi.Challenge
	json.Unmarshal(e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil).Body.Bytes(), &ch)
	req = nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pubKey(t), Attestor: "tpm", Payload: []byte(`{"secret":"","quotes":[]}`), Name: "host-z"}
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "two rounds") {
		t.Errorf("second round alone: %d %s", w.Code, w.Body)
	}
	// A one-round attestor has no first round.
	json.Unmarshal(e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil).Body.Bytes(), &ch)
	req = nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pubKey(t), Attestor: "join_token", Payload: []byte(`{}`)}
	if w := e.do(ctx, "POST", nodeapi.PathActivate, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "takes one round") {
		t.Errorf("first round of join_token: %d %s", w.Code, w.Body)
	}
	if _, err := e.db.GetNode(ctx, "host-y"); err == nil {
		t.Errorf("a refused node was recorded")
	}
}
