package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

const value = "ghp_SUPERSECRETvalue123"

func newBroker(t *testing.T) (*broker.Broker, string, *[]audit.Event) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "writ.db")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := keys.NewSealer(bytes.Repeat([]byte{7}, keys.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	var events []audit.Event
	b, err := broker.New(broker.Config{Store: db, Sealer: s, Emitter: audit.EmitterFunc(func(_ context.Context, e audit.Event) error {
		events = append(events, e)
		return nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	return b, path, &events
}

func TestSecretRedacts(t *testing.T) {
	s := broker.NewSecret([]byte(value))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", s)
	js, _ := json.Marshal(struct{ S broker.Secret }{s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %+v %#v", s, s, s, s, s, s), string(js), logged.String(),
		fmt.Errorf("wrap: %v", s).Error(),
	}
	for _, o := range outs {
		if strings.Contains(o, "SUPERSECRET") || !strings.Contains(o, "[REDACTED]") {
			t.Errorf("output %q leaks or does not redact", o)
		}
	}
	if s.Reveal() != value || !s.Equal(broker.NewSecret([]byte(value))) || s.Equal(broker.NewSecret([]byte("other"))) {
		t.Error("Reveal/Equal wrong")
	}
}

func TestPutGetRotateDelete(t *testing.T) {
	ctx := context.Background()
	b, path, events := newBroker(t)
	info, err := b.Put(ctx, "admin", "github", broker.Bearer, broker.NewSecret([]byte(value)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 1 || info.Type != broker.Bearer {
		t.Errorf("Put = %+v", info)
	}
	if _, err := b.Put(ctx, "admin", "github", broker.Bearer, broker.NewSecret([]byte("x"))); !errors.Is(err, broker.ErrExists) {
		t.Errorf("second Put: %v, want ErrExists", err)
	}
	_, got, err := b.Get(ctx, "github")
	if err != nil || got.Reveal() != value {
		t.Fatalf("Get: %v", err)
	}
	// Sealed at rest: the value is nowhere in the database files.
	for _, f := range []string{path, path + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("SUPERSECRET")) {
			t.Errorf("%s holds the plaintext value", f)
		}
	}
	// Rotation is visible at once, despite the cache.
	info, err = b.Rotate(ctx, "admin", "github", "", broker.NewSecret([]byte("ghp_NEW")))
	if err != nil || info.Version != 2 || info.Type != broker.Bearer {
		t.Fatalf("Rotate = %+v, %v", info, err)
	}
	if _, got, _ := b.Get(ctx, "github"); got.Reveal() != "ghp_NEW" {
		t.Errorf("after rotate Get = %q", got.Reveal())
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "github" || list[0].Version != 2 {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := b.Delete(ctx, "admin", "github"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "github"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	if _, err := b.Rotate(ctx, "admin", "github", "", broker.NewSecret([]byte("x"))); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Rotate missing: %v", err)
	}
	if len(*events) != 3 {
		t.Errorf("%d events, want put, rotate, delete", len(*events))
	}
	for _, e := range *events {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "ghp_") || e.Credential != "github" {
			t.Errorf("event %s leaks the value or lacks the name", b)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, cname string
		typ         broker.Type
		val         string
		want        string
	}{
		{"bad name", "Git Hub", broker.Bearer, "v", "credential name"},
		{"bad type", "gh", "cookie", "v", "bearer, basic"},
		{"empty", "gh", broker.Bearer, "", "empty"},
		{"newline", "gh", broker.Bearer, "SUPERSECRET\n", "control character"},
		{"basic without colon", "gh", broker.Basic, "SUPERSECRET", "USER:PASSWORD"},
		{"too big", "gh", broker.Bearer, strings.Repeat("a", broker.MaxValue+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := broker.Validate(tc.cname, tc.typ, broker.NewSecret([]byte(tc.val)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SUPERSECRET") {
				t.Errorf("error leaks the value: %v", err)
			}
		})
	}
	if err := broker.Validate("gh", broker.Basic, broker.NewSecret([]byte("u:p"))); err != nil {
		t.Errorf("valid basic: %v", err)
	}
}

type fakeSigner struct{ claims map[string]any }

func (f *fakeSigner) SignJWT(_ context.Context, typ string, c map[string]any) (string, error) {
	f.claims = c
	return typ + ".signed", nil
}

func TestMint(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := &fakeSigner{}
	tok, jti, err := broker.Mint(context.Background(), s, broker.MintParams{Issuer: "http://w", Subject: "spiffe://writ.local/a",
		Instance: "inst_1", Audience: "billing", Scopes: []string{"read", "write"}, TTL: 5 * time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Reveal() != "at+jwt.signed" || !strings.HasPrefix(jti, "at_") {
		t.Errorf("token %q jti %q", tok.Reveal(), jti)
	}
	c := s.claims
	if c["aud"] != "billing" || c["scope"] != "read write" || c["agent_instance"] != "inst_1" || c["exp"] != now.Add(5*time.Minute).Unix() {
		t.Errorf("claims = %v", c)
	}
	if _, _, err := broker.Mint(context.Background(), s, broker.MintParams{Subject: "x", Audience: "a", TTL: 2 * time.Hour}); err == nil {
		t.Error("2h token minted")
	}
}
