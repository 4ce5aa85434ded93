package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestServeWithKeyDevices runs writ with its X.509 CA and proxy CA keys in
// a SoftHSM2 token, its JWT keys in a swtpm TPM and its KEK sealed to that
// TPM: a workload gets SVIDs that go-spiffe verifies, no plain KEK file
// is written, and a restart finds every key again.
func TestServeWithKeyDevices(t *testing.T) {
	tk := keystest.SoftHSM(t)
	sim := keystest.SWTPM(t)
	t.Setenv("WRIT_TEST_PKCS11_PIN", tk.PIN)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Keys = config.Keys{X509CA: "pkcs11", JWT: "tpm", ProxyCA: "pkcs11", KEK: "tpm",
		PKCS11: &config.KeyPKCS11{Module: tk.Module, TokenLabel: tk.Label, PINEnv: "WRIT_TEST_PKCS11_PIN"},
		TPM:    &config.KeyTPM{TCP: sim.Addr, TCPPlatform: sim.Platform}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", "spiffe://writ.local/agent/me")); err != nil {
		t.Fatal(err)
	}
	fetch := func() {
		t.Helper()
		x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(in.addr))
		if err != nil {
			t.Fatalf("FetchX509Context: %v", err)
		}
		if _, _, err := x509svid.Verify(x.SVIDs[0].Certificates, x.Bundles); err != nil {
			t.Fatalf("x509svid.Verify: %v", err)
		}
		j, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"}, workloadapi.WithAddr(in.addr))
		if err != nil {
			t.Fatalf("FetchJWTSVID: %v", err)
		}
		jb, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(in.addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwtsvid.ParseAndValidate(j.Marshal(), jb, []string{"db"}); err != nil {
			t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
		}
	}
	fetch()
	if _, err := os.Stat(filepath.Join(dir, "kek")); err == nil {
		t.Error("a plain KEK file was written although keys.kek is tpm")
	}
	if _, err := os.Stat(filepath.Join(dir, "kek.tpm")); err != nil {
		t.Errorf("no TPM-sealed KEK: %v", err)
	}
	in.stop()

	// Where each key lives, read from the store.
	db, err := sqlite.Open(ctx, cfg.Store.DSN, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string]string{store.KeyX509CA: keys.KindPKCS11, store.KeyJWT: keys.KindTPM, "proxy-ca": keys.KindPKCS11} {
		recs, err := db.ListKeys(ctx, kind)
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s keys: %d, %v", kind, len(recs), err)
		}
		for _, r := range recs {
			if got, _ := keys.HandleKind(r.Sealed); got != want {
				t.Errorf("%s key %s kept by %q, want %s", kind, r.ID, got, want)
			}
		}
	}
	db.Close()

	in = start(t, cfg)
	fetch()
	// The tier report reads where the active keys are, from their handles.
	rep, err := in.client.Tier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rep.Rows {
		if r.ID == "hardware-keys" {
			found = true
			if r.Verdict != "met" || !strings.Contains(r.Evidence, "mixed") {
				t.Errorf("hardware-keys row with the CA in SoftHSM2 and JWT keys in a TPM: %+v", r)
			}
		}
	}
	if !found {
		t.Error("tier report has no hardware-keys row")
	}
	in.stop()

	// Without the PIN, writ refuses to start and says why, without a PIN.
	t.Setenv("WRIT_TEST_PKCS11_PIN", "")
	if _, err := server.New(ctx, cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "WRIT_TEST_PKCS11_PIN is empty or not set") {
		t.Errorf("start without the PIN: %v", err)
	}
	t.Setenv("WRIT_TEST_PKCS11_PIN", "wrong-pin-1234")
	if _, err := server.New(ctx, cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "PIN is incorrect") || strings.Contains(err.Error(), "wrong-pin-1234") {
		t.Errorf("start with a wrong PIN: %v", err)
	}
}
