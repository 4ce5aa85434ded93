package server_test

import (
	"context"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/auditlog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestFoundationEventsAreAudited: what the foundation does (entry changes,
// attestation, SVID issuance, key activation) lands in the Merkle log,
// attributed to SPIFFE ID and instance, and the log verifies offline after
// a clean shutdown with a final signed checkpoint.
func TestFoundationEventsAreAudited(t *testing.T) {
	dir := t.TempDir()
	in := start(t, testConfig(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", "spiffe://writ.local/agent/me")); err != nil {
		t.Fatal(err)
	}
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatal(err)
	}
	instance := svid.Certificates[0].Subject.SerialNumber
	if _, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "x"}, workloadapi.WithAddr(in.addr)); err != nil {
		t.Fatal(err)
	}

	find := func(typ audit.Type) apitypes.AuditEntry {
		t.Helper()
		res, err := in.client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(typ), Limit: 10})
		if err != nil {
			t.Fatalf("search %s: %v", typ, err)
		}
		if len(res.Events) == 0 {
			t.Fatalf("no %s event in the audit log", typ)
		}
		return res.Events[0]
	}
	if e := find(audit.EntryCreated); e.Actor != "admin:admin" || e.SpiffeID != "spiffe://writ.local/agent/me" {
		t.Errorf("entry.created = %+v", e.AuditEvent)
	}
	if e := find(audit.AttestationOK); e.Instance != instance {
		t.Errorf("attestation.ok instance %q, want %q", e.Instance, instance)
	}
	for _, typ := range []audit.Type{audit.SVIDIssued, audit.JWTSVIDIssued} {
		if e := find(typ); e.Instance != instance || e.SpiffeID != "spiffe://writ.local/agent/me" {
			t.Errorf("%s = %+v", typ, e.AuditEvent)
		}
	}
	find(audit.KeyActivated)
	key, err := in.client.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in.stop()

	db, err := sqlite.Open(ctx, filepath.Join(dir, "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	trusted, err := auditlog.ParseVerifierKeys(key.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := auditlog.Verify(ctx, db.Audit(), auditlog.VerifyOptions{Trusted: trusted})
	if err != nil {
		t.Fatalf("offline verify: %v", err)
	}
	if rep.Size < 5 || rep.Unsigned != 0 || rep.Latest == nil || rep.Latest.Size != rep.Size {
		t.Errorf("verify report = size %d unsigned %d latest %+v; want a final checkpoint covering every event", rep.Size, rep.Unsigned, rep.Latest)
	}
}
