package auditlog_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// crashHelperEnv selects the helper mode of this test binary: append
// under load (Synced and Written) and print "<index> <id>" for every
// acknowledged event, until killed.
const crashHelperEnv = "WRIT_AUDIT_CRASH_HELPER"

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		crashHelper(t)
		return
	}
	e := newEnv(t)
	e.db.Close()
	e.db = nil

	run := func(minAcked int) map[string]int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+e.path, "WRIT_AUDIT_CRASH_KEK="+hex.EncodeToString(e.kek))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := make(map[string]int64)
		sc := bufio.NewScanner(out)
		deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		defer deadline.Stop()
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue // a line cut by the kill
			}
			idx, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				continue
			}
			acked[f[1]] = idx
			if len(acked) == minAcked {
				// Kill mid-stream: writers are still appending.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		cmd.Wait()
		if len(acked) < minAcked {
			t.Fatalf("helper acknowledged only %d events before it died", len(acked))
		}
		return acked
	}

	check := func(acked map[string]int64) {
		t.Helper()
		e.reopenDB(t)
		l := e.open(t, e.config()) // recovers: checks and signs the unsigned tail
		ctx := context.Background()
		for id, idx := range acked {
			r, err := e.db.Audit().RecordByID(ctx, id)
			if err != nil {
				t.Fatalf("acknowledged event %s (index %d) lost after SIGKILL: %v", id, idx, err)
			}
			if r.Index != idx {
				t.Fatalf("acknowledged event %s moved from index %d to %d", id, idx, r.Index)
			}
		}
		rep, err := e.verify(t)
		if err != nil {
			t.Fatalf("log does not verify after SIGKILL: %v", err)
		}
		if rep.Unsigned > 1 { // the recovery checkpoint's own event
			t.Errorf("after reopening, %d events are not covered by a checkpoint", rep.Unsigned)
		}
		before := l.Size()
		en, err := l.Append(ctx, sampleEvent(1))
		if err != nil || en.Index != before {
			t.Fatalf("append after recovery = index %d, %v; want %d", en.Index, err, before)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		e.db.Close()
		e.db = nil
		t.Logf("%d acknowledged events survived; log size %d", len(acked), before+1)
	}

	// Twice, so the second run resumes on a recovered log.
	check(run(3000))
	check(run(2000))
}

func crashHelper(t *testing.T) {
	kek, err := hex.DecodeString(os.Getenv("WRIT_AUDIT_CRASH_KEK"))
	if err != nil {
		t.Fatal(err)
	}
	path := os.Getenv(crashHelperEnv)
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(context.Background(), auditlog.Config{
		Backend: db.Audit(), Keys: db, Sealer: sealer, CheckpointEvery: 500, CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the writers acknowledge at the commit, before the
			// fsync (Written): a kill of the process must not lose
			// those either.
			d := audit.Synced
			if g%2 == 1 {
				d = audit.Written
			}
			for i := 0; ; i++ {
				en, err := l.AppendWith(context.Background(), sampleEvent(g*1000000+i), d)
				if err != nil {
					fmt.Fprintln(os.Stderr, "helper append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(w, "%d %s\n", en.Index, en.ID)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
