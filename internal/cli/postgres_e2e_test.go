package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
)

// TestPostgresTwoServers runs two real servers on one PostgreSQL store
// (store.driver: postgres), each with its own data directory and the same
// key-encryption key: an entry created through server A gives a go-spiffe
// client of server B its SVID, which verifies against A's bundle (one CA,
// shared sealed); both servers' events go to one audit log, which
// `writ audit verify --dsn` checks offline after they stop.
func TestPostgresTwoServers(t *testing.T) {
	dsn := pgtest.DSN(t)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "config"))
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	kekFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kekFile, []byte(base64.StdEncoding.EncodeToString(kek)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFor := func() config.Config {
		cfg := servertest.Config(t.TempDir())
		cfg.Store.Driver, cfg.Store.DSN = "postgres", dsn
		cfg.KEKFile = kekFile
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := servertest.Start(t, cfgFor(), nil)
	if !strings.HasPrefix(a.Server.StoreDescription(), "postgres postgres://") || strings.Contains(a.Server.StoreDescription(), "password") {
		t.Errorf("store description %q", a.Server.StoreDescription())
	}
	id := "spiffe://writ.local/agent/pg"
	if _, err := a.Client.CreateEntry(ctx, apitypes.Entry{Name: "pg", SpiffeID: id,
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	// The admin credential is made once, by the first server on the
	// store; the others accept it (an operator copies admin.token).
	cfgB := cfgFor()
	tok, err := os.ReadFile(a.Server.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgB.DataDir, "admin.token"), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	b := servertest.Start(t, cfgB, nil)

	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(b.WorkloadAddr))
	if err != nil {
		t.Fatalf("go-spiffe client of server B: %v", err)
	}
	if svid.ID.String() != id {
		t.Fatalf("server B issued %s, want %s (the entry created on A)", svid.ID, id)
	}
	bundlesA, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(a.WorkloadAddr))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundlesA); err != nil {
		t.Fatalf("B's SVID does not verify against A's bundle (the CA is not shared): %v", err)
	}
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(a.WorkloadAddr)); err != nil {
		t.Fatalf("go-spiffe client of server A: %v", err)
	}
	// An audited change through B.
	if _, err := b.Client.CreateEntry(ctx, apitypes.Entry{Name: "pg2", SpiffeID: id + "2", Selectors: []string{"unix:uid:1"}}); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	b.Stop()

	var out, errb strings.Builder
	code := Main([]string{"audit", "verify", "--dsn", dsn, "--no-remember"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "audit log OK") {
		t.Fatalf("writ audit verify --dsn: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), dsn) {
		t.Errorf("verify printed the DSN")
	}
	// Both servers' events are in the one log.
	out.Reset()
	errb.Reset()
	if code := Main([]string{"audit", "key", "--offline", "--dsn", dsn}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "writ.local/audit+") {
		t.Errorf("writ audit key --offline --dsn: exit %d %q %q", code, out.String(), errb.String())
	}
}

// TestPostgresServeBadDSN: a server whose store.dsn reaches no
// PostgreSQL fails to start, naming store.dsn and never the password.
func TestPostgresServeBadDSN(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.Store.Driver, cfg.Store.DSN = "postgres", "postgres://writ:hunter2secret@127.0.0.1:1/writ?connect_timeout=5"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(context.Background(), cfg, server.Options{})
	if err == nil || !strings.Contains(err.Error(), "store.dsn") || strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("server.New on an unreachable postgres = %v, want an error naming store.dsn without the password", err)
	}
}

func TestAuditVerifyDSNErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verify", "--dsn", "postgres://u:hunter2secret@127.0.0.1:notaport/x"}, "--dsn: open store: parse connection string"},
		{[]string{"audit", "verify", "--dsn", "postgres://u@127.0.0.1/x", "--db", "/tmp/x.db"}, "--db and --dsn name two stores"},
	} {
		var out, errb strings.Builder
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "hunter2secret") {
			t.Errorf("writ %s: exit %d, stderr %q; want an error with %q and no password", strings.Join(tc.args, " "), code, errb.String(), tc.want)
		}
	}
}
