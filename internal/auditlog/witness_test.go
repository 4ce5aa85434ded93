package auditlog_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/auditlog"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessCommandHelper is the witness program of TestWitnessCommand,
// run as this test binary with arguments after "--": KEYFILE RECVFILE
// [fail]. It appends the size of each checkpoint it reads on stdin to
// RECVFILE and prints the checkpoint cosigned with the signer key in
// KEYFILE (or, with "fail", exits 3 saying so on stderr).
func TestWitnessCommandHelper(t *testing.T) {
	args := flag.Args()
	if len(args) < 2 {
		t.Skip("the witness program of TestWitnessCommand")
	}
	msg, _ := io.ReadAll(os.Stdin)
	if len(args) > 2 && args[2] == "fail" {
		fmt.Fprintln(os.Stderr, "witness is down for maintenance")
		os.Exit(3)
	}
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		fmt.Fprintln(os.Stderr, "not a signed note:", err)
		os.Exit(2)
	}
	lines := strings.Split(unverified.Note.Text, "\n")
	f, _ := os.OpenFile(args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	fmt.Fprintln(f, lines[1])
	f.Close()
	skey, _ := os.ReadFile(args[0])
	s, _ := note.NewSigner(string(skey))
	out, _ := note.Sign(&note.Note{Text: unverified.Note.Text}, s)
	os.Stdout.Write(out)
	os.Exit(0) // before the testing package prints PASS on stdout
}

// witnessKey returns a new witness signing key and its verifier.
func witnessKey(t testing.TB, name string) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v, skey
}

type delivery struct {
	witness string
	err     error
}

// TestWitnessCommand: a witness command receives every checkpoint the log
// signs (the final one at Close too), and its cosignature is checked and
// stored with the checkpoint.
func TestWitnessCommand(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	_, v, skey := witnessKey(t, "witness.example")
	keyFile, recvFile := filepath.Join(dir, "key"), filepath.Join(dir, "received")
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan delivery, 16)
	cfg := e.config()
	cfg.Witnesses = []auditlog.Witness{{
		Name:   "cmd",
		Sender: auditlog.CommandSender{Argv: []string{os.Args[0], "-test.run=^TestWitnessCommandHelper$", "--", keyFile, recvFile}},
		Key:    v,
	}}
	cfg.WitnessDone = func(w string, err error) { done <- delivery{w, err} }
	l := e.open(t, cfg)
	ctx := context.Background()
	var signed []int64
	for range 3 {
		appendN(t, l, 2)
		_, cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		signed = append(signed, cp.Size)
		if d := <-done; d.err != nil || d.witness != "cmd" {
			t.Fatalf("delivery of checkpoint %d: %+v", cp.Size, d)
		}
	}
	// The latest checkpoint as served carries the cosignature.
	latest, _ := l.LatestCheckpoint()
	if names, ok, err := auditlog.Cosignatures(latest.Note, l.Trusted(), []note.Verifier{v}); err != nil || len(names) != 1 || !ok[0] {
		t.Errorf("latest checkpoint cosignatures = %v %v %v, want the witness's, verified\n%s", names, ok, err, latest.Note)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := <-done; d.err != nil {
		t.Fatalf("delivery of the final checkpoint: %v", d.err)
	}
	_, final := l.LatestCheckpoint()
	signed = append(signed, final.Size)

	b, err := os.ReadFile(recvFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for sc := bufio.NewScanner(strings.NewReader(string(b))); sc.Scan(); {
		n, _ := strconv.ParseInt(sc.Text(), 10, 64)
		got = append(got, n)
	}
	if fmt.Sprint(got) != fmt.Sprint(signed) {
		t.Errorf("witness received checkpoints of sizes %v, want every one signed: %v", got, signed)
	}
	stored, err := e.db.Audit().ListCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range stored {
		names, ok, err := auditlog.Cosignatures(c.Note, l.Trusted(), []note.Verifier{v})
		if err != nil || len(names) != 1 || !ok[0] || !strings.HasPrefix(names[0], "witness.example+") {
			t.Errorf("stored checkpoint %d: cosignatures %v %v %v\n%s", c.Size, names, ok, err, c.Note)
		}
	}
	// Cosigned checkpoints still verify, and the log opens on them.
	if _, err := e.verify(t); err != nil {
		t.Fatalf("Verify with cosigned checkpoints: %v", err)
	}
	e.open(t, e.config())
}

// TestWitnessFailuresDoNotStopAppends: witnesses that are down, answer
// with an error or with a signature by another key are reported to
// WitnessDone, store no cosignature, and never fail an append; a file
// and an HTTP witness that work receive every checkpoint.
func TestWitnessFailuresDoNotStopAppends(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	good, goodV, _ := witnessKey(t, "good.example")
	other, _, _ := witnessKey(t, "good.example") // same name, another key
	_, liarV, _ := witnessKey(t, "liar.example")
	cosign := func(s note.Signer) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			_, err := note.Open(body, note.VerifierList())
			var u *note.UnverifiedNoteError
			if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") || !errors.As(err, &u) {
				http.Error(w, "want a POSTed signed note", http.StatusBadRequest)
				return
			}
			out, _ := note.Sign(&note.Note{Text: u.Note.Text}, s)
			w.Write(out)
		}
	}
	goodSrv := httptest.NewServer(cosign(good))
	defer goodSrv.Close()
	liarSrv := httptest.NewServer(cosign(other))
	defer liarSrv.Close()
	downSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer downSrv.Close()
	_, _, skey := witnessKey(t, "unused.example")
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(skey), 0o600)
	fileWitness := filepath.Join(dir, "checkpoints")

	done := make(chan delivery, 64)
	cfg := e.config()
	cfg.Witnesses = []auditlog.Witness{
		{Name: "file", Sender: auditlog.FileSender{Path: fileWitness}},
		{Name: "good", Sender: auditlog.HTTPSender{URL: goodSrv.URL}, Key: goodV},
		{Name: "liar", Sender: auditlog.HTTPSender{URL: liarSrv.URL}, Key: goodV},
		{Name: "wrongkey", Sender: auditlog.HTTPSender{URL: goodSrv.URL}, Key: liarV},
		{Name: "down", Sender: auditlog.HTTPSender{URL: downSrv.URL}},
		{Name: "cmdfail", Sender: auditlog.CommandSender{Argv: []string{os.Args[0], "-test.run=^TestWitnessCommandHelper$", "--", keyFile, filepath.Join(dir, "r"), "fail"}}},
		{Name: "nocmd", Sender: auditlog.CommandSender{Argv: []string{filepath.Join(dir, "no-such-program")}}},
	}
	cfg.WitnessDone = func(w string, err error) { done <- delivery{w, err} }
	l := e.open(t, cfg)
	ctx := context.Background()
	appendN(t, l, 3)
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	results := map[string]error{}
	for range cfg.Witnesses {
		d := <-done
		results[d.witness] = d.err
	}
	appendN(t, l, 3) // appends go on whatever the witnesses did
	for name, want := range map[string]string{
		"file": "", "good": "",
		"liar":     "not the checkpoint signed by its key good.example+",
		"wrongkey": "not the checkpoint signed by its key liar.example+",
		"down":     "503 Service Unavailable: maintenance",
		"cmdfail":  "exit status 3: witness is down for maintenance",
		"nocmd":    "no-such-program",
	} {
		err := results[name]
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("witness %s: %v, want %q", name, err, want)
		}
	}
	latest, _ := l.LatestCheckpoint()
	names, ok, err := auditlog.Cosignatures(latest.Note, l.Trusted(), []note.Verifier{goodV})
	if err != nil || len(names) != 1 || !ok[0] {
		t.Errorf("cosignatures stored = %v %v %v, want only the good witness's", names, ok, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(fileWitness)
	if n := strings.Count(string(b), "\n— writ.local/audit "); n != 2 {
		t.Errorf("file witness holds %d checkpoints, want 2 (the one asked for and the final one):\n%s", n, b)
	}
}

// FuzzMergeCosignature feeds hostile witness answers to MergeCosignature:
// it must never panic, and whatever it accepts must still open under the
// log's key, with the witness's signature verified.
func FuzzMergeCosignature(f *testing.F) {
	logS, logV, _ := witnessKey(f, "writ.local/audit")
	ws, wv, _ := witnessKey(f, "witness.example")
	text := "writ.local/audit\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	base, _ := note.Sign(&note.Note{Text: text}, logS)
	good, _ := note.Sign(&note.Note{Text: text}, ws)
	other, _ := note.Sign(&note.Note{Text: "writ.local/audit\n4\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, ws)
	f.Add(good)
	f.Add(other)
	f.Add(base)
	f.Add([]byte(""))
	f.Add([]byte("\n\n— witness.example AAAA\n"))
	trusted := note.VerifierList(logV)
	f.Fuzz(func(t *testing.T, answer []byte) {
		merged, err := auditlog.MergeCosignature(base, trusted, wv, answer)
		if err != nil {
			return
		}
		if _, err := note.Open(merged, trusted); err != nil {
			t.Fatalf("merged note does not open under the log key: %v", err)
		}
		if _, err := note.Open(merged, note.VerifierList(wv)); err != nil {
			t.Fatalf("merged note does not carry a valid witness signature: %v", err)
		}
	})
}
