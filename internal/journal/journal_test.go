package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func open(t *testing.T, cfg Config) *Journal {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "j")
	}
	j, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func begin(t *testing.T, j *Journal, rec string) Ticket {
	t.Helper()
	tk, err := j.Begin([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func recovered(t *testing.T, path string) []string {
	t.Helper()
	recs, damaged, err := Recover(path)
	if err != nil {
		t.Fatal(err)
	}
	if damaged {
		t.Fatal("Recover reports a damaged record")
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r))
	}
	return out
}

func TestRecoverReturnsUnsettledInOrder(t *testing.T) {
	j := open(t, Config{})
	a := begin(t, j, "a")
	begin(t, j, "b")
	c := begin(t, j, "c")
	begin(t, j, "d")
	j.Done(a)
	j.Done(c)
	// A crash: the file is not closed.
	got := recovered(t, j.cfg.Path)
	// Settling is not written to the file: Recover returns every record
	// begun since the last compaction, and the caller skips those the log
	// already holds.
	if want := []string{"a", "b", "c", "d"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Recover = %q, want %q", got, want)
	}
	if n := j.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2", n)
	}
}

func TestCloseRemovesSettledJournal(t *testing.T) {
	j := open(t, Config{})
	j.Done(begin(t, j, "a"))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.cfg.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal file after a clean close: %v", err)
	}
	if _, err := j.Begin([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	if got := recovered(t, j.cfg.Path); len(got) != 0 {
		t.Fatalf("Recover of a removed journal = %q", got)
	}
}

func TestCloseKeepsUnsettled(t *testing.T) {
	j := open(t, Config{})
	j.Done(begin(t, j, "a"))
	begin(t, j, "b")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if got := recovered(t, j.cfg.Path); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("Recover = %q", got)
	}
}

func TestOpenReplacesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, Config{Path: path})
	begin(t, j, "old")
	j2 := open(t, Config{Path: path})
	begin(t, j2, "new")
	if got := recovered(t, path); fmt.Sprint(got) != "[new]" {
		t.Fatalf("Recover = %q", got)
	}
}

// TestCompaction: past MaxSize the file keeps only unsettled records, in
// their order, and stays bounded however many records pass through it.
func TestCompaction(t *testing.T) {
	j := open(t, Config{MaxSize: 4096})
	rec := strings.Repeat("x", 100)
	var keep []string
	for i := range 2000 {
		r := fmt.Sprintf("%04d%s", i, rec)
		tk := begin(t, j, r)
		if i%500 == 7 {
			keep = append(keep, r) // never settled, like a long tunnel
			continue
		}
		j.Done(tk)
		j.mu.Lock()
		size := j.size
		j.mu.Unlock()
		if size > 4096+200 {
			t.Fatalf("journal records grew to %d bytes with MaxSize 4096", size)
		}
		if fi, err := os.Stat(j.cfg.Path); err != nil {
			t.Fatal(err)
		} else if fi.Size() > j.mapSize() {
			t.Fatalf("journal file grew to %d bytes with MaxSize 4096 (mapped: %d)", fi.Size(), j.mapSize())
		}
	}
	recs := recovered(t, j.cfg.Path)
	// The file holds the unsettled records and those begun since the
	// last compaction.
	var got []string
	for _, r := range recs {
		if i, _ := strconv.Atoi(r[:4]); i%500 == 7 {
			got = append(got, r)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(keep) {
		t.Fatalf("unsettled records after compactions: %d, want %d", len(got), len(keep))
	}
	if j.gen == 0 {
		t.Fatal("no compaction ran")
	}
}

func TestRecoverDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, Config{Path: path})
	begin(t, j, "first")
	begin(t, j, "second")
	good, _ := os.ReadFile(path)
	good = good[:j.size] // a mapped file is zero past its records
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"torn frame header", append(bytes.Clone(good), 9, 0, 0), "[first second]"},
		{"torn payload", append(bytes.Clone(good), 9, 0, 0, 0, 1, 2, 3, 4, 'a'), "[first second]"},
		{"bad checksum", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(), "[first]"},
		{"absurd length", append(bytes.Clone(good), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), "[first second]"},
		{"cut header", []byte(header[:5]), "[]"},
		{"bytes after the end", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', 0), "[first second]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "j")
			os.WriteFile(p, tc.data, 0o600)
			recs, damaged, err := Recover(p)
			if err != nil {
				t.Fatal(err)
			}
			if !damaged {
				t.Error("damaged = false")
			}
			var got []string
			for _, r := range recs {
				got = append(got, string(r))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("Recover = %q, want %s", got, tc.want)
			}
		})
	}
}

func TestRecoverForeignFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j")
	os.WriteFile(p, []byte("hello world, not a journal\n"), 0o600)
	_, _, err := Recover(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a writ journal") {
		t.Fatalf("Recover of a foreign file: %v", err)
	}
}

func TestBeginRefusesHugeRecord(t *testing.T) {
	j := open(t, Config{})
	if _, err := j.Begin(make([]byte, MaxRecord+1)); err == nil {
		t.Fatal("Begin took a record over MaxRecord")
	}
	if got := recovered(t, j.cfg.Path); len(got) != 0 {
		t.Fatalf("Recover = %d records", len(got))
	}
}

// TestSyncMode: Begin returns only after a sync that started once the
// record was written, and concurrent Begins share syncs.
func TestSyncMode(t *testing.T) {
	var syncs atomic.Int64
	var mu sync.Mutex
	var syncedSize int64
	cfg := Config{Sync: true, sync: func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond) // a disk: Begins arrive while it syncs
		mu.Lock()
		syncedSize = max(syncedSize, fi.Size())
		mu.Unlock()
		return nil
	}}
	j := open(t, cfg)
	syncs.Store(0)
	begin(t, j, "one")
	mu.Lock()
	if fi, _ := os.Stat(j.cfg.Path); syncedSize != fi.Size() {
		t.Fatalf("Begin returned with %d bytes synced of %d", syncedSize, fi.Size())
	}
	mu.Unlock()
	const n = 64
	syncs.Store(0)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tk, err := j.Begin([]byte(fmt.Sprint("rec", i)))
			if err != nil {
				t.Error(err)
				return
			}
			j.Done(tk)
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if fi, _ := os.Stat(j.cfg.Path); syncedSize != fi.Size() {
		t.Fatalf("after concurrent Begins %d bytes synced of %d", syncedSize, fi.Size())
	}
	if s := syncs.Load(); s > n/2 {
		t.Fatalf("%d syncs for %d concurrent records: they do not share syncs", s, n)
	}
}

func TestSyncFailureFailsClosed(t *testing.T) {
	fail := atomic.Bool{}
	j := open(t, Config{Sync: true, sync: func(*os.File) error {
		if fail.Load() {
			return errors.New("EIO")
		}
		return nil
	}})
	begin(t, j, "ok")
	fail.Store(true)
	if _, err := j.Begin([]byte("lost")); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Begin with a failing sync: %v", err)
	}
	fail.Store(false)
	if _, err := j.Begin([]byte("after")); err == nil || !strings.Contains(err.Error(), "restart writ") {
		t.Fatalf("Begin after a failed sync: %v", err)
	}
}

func TestWriteFailureFailsClosed(t *testing.T) {
	j := open(t, Config{noMap: true})
	begin(t, j, "ok")
	j.f.Close() // the file goes bad under the journal
	if _, err := j.Begin([]byte("x")); err == nil {
		t.Fatal("Begin on a closed file succeeded")
	}
	if _, err := j.Begin([]byte("y")); err == nil || !strings.Contains(err.Error(), "restart writ") {
		t.Fatalf("Begin after a failed write and truncate: %v", err)
	}
}

func FuzzRecover(f *testing.F) {
	f.Add([]byte(header))
	f.Add(append([]byte(header), 1, 0, 0, 0, 0, 0, 0, 0, 'x'))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "j")
		os.WriteFile(p, data, 0o600)
		recs, _, err := Recover(p)
		if err != nil {
			return
		}
		// What Recover returns, written again, reads back the same.
		j := open(t, Config{Path: filepath.Join(t.TempDir(), "k")})
		for _, r := range recs {
			begin(t, j, string(r))
		}
		again := recovered(t, j.cfg.Path)
		if len(again) != len(recs) {
			t.Fatalf("round trip: %d records, want %d", len(again), len(recs))
		}
		for i := range recs {
			if again[i] != string(recs[i]) {
				t.Fatalf("record %d changed in the round trip", i)
			}
		}
	})
}

// TestMappedGrowFailureFailsClosed: a mapped journal that must grow (records
// begun past its mapping, none settled) and cannot fails that record and
// every later one.
func TestMappedGrowFailureFailsClosed(t *testing.T) {
	j := open(t, Config{MaxSize: 4096})
	if j.m == nil {
		t.Skip("this file system does not reserve blocks: the journal writes its records")
	}
	big := strings.Repeat("x", MaxRecord)
	begin(t, j, big)
	begin(t, j, big) // fits the mapping
	j.f.Close()      // the file goes bad under the journal
	if _, err := j.Begin([]byte(big)); err == nil {
		t.Fatal("Begin past the mapping of a closed file succeeded")
	}
	if _, err := j.Begin([]byte("y")); err == nil || !strings.Contains(err.Error(), "restart writ") {
		t.Fatalf("Begin after a failed grow: %v", err)
	}
}

// TestMappedGrows: records begun past the mapping, none settled, remap
// the file longer, and every record is recovered.
func TestMappedGrows(t *testing.T) {
	j := open(t, Config{MaxSize: 4096})
	rec := strings.Repeat("y", MaxRecord/2)
	var want []string
	for i := range 8 {
		r := fmt.Sprintf("%d%s", i, rec)
		begin(t, j, r)
		want = append(want, r)
	}
	got := recovered(t, j.cfg.Path)
	if len(got) != len(want) {
		t.Fatalf("recovered %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d changed", i)
		}
	}
}

// TestBeginRefusesEmptyRecord: an empty record would read as the end of
// the records.
func TestBeginRefusesEmptyRecord(t *testing.T) {
	j := open(t, Config{})
	if _, err := j.Begin(nil); err == nil {
		t.Fatal("Begin(nil) succeeded")
	}
}

// TestWrittenMode runs the record order test with write(2) records.
func TestWrittenMode(t *testing.T) {
	j := open(t, Config{noMap: true})
	a := begin(t, j, "a")
	begin(t, j, "b")
	j.Done(a)
	// Settling is not written: both are recovered (see above).
	if got := recovered(t, j.cfg.Path); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("Recover = %q, want [a b]", got)
	}
	if j.m != nil {
		t.Fatal("noMap journal is mapped")
	}
}

// inode returns the inode number of the file at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestCompactionRecyclesSpare: a mapped journal's compactions alternate
// between two files (the one replaced is the next one written), and what
// a recycled file held before never comes back: Recover returns exactly
// the unsettled records and those begun since the last compaction.
func TestCompactionRecyclesSpare(t *testing.T) {
	j := open(t, Config{MaxSize: 4096})
	if j.m == nil {
		t.Skip("this file system does not reserve blocks: the journal writes its records")
	}
	inodes := map[uint64]bool{inode(t, j.cfg.Path): true}
	unsettled := map[string]bool{}
	var since []string // begun since the last compaction
	gen := j.gen
	for i := range 3000 {
		// Records of varying length, so that a recycled file's old
		// records do not line up with its new ones.
		r := fmt.Sprintf("%05d%s", i, strings.Repeat("z", i%300))
		tk := begin(t, j, r)
		if j.gen != gen {
			gen, since = j.gen, nil
			inodes[inode(t, j.cfg.Path)] = true
			if _, err := os.Stat(j.cfg.Path + ".spare"); err != nil {
				t.Fatalf("after a compaction: %v", err)
			}
		}
		since = append(since, r)
		if i%700 == 3 {
			unsettled[r] = true
		} else {
			j.Done(tk)
			if j.gen != gen {
				gen, since = j.gen, nil
				inodes[inode(t, j.cfg.Path)] = true
			}
		}
		if i%97 != 0 {
			continue
		}
		want := map[string]bool{}
		for _, r := range since {
			want[r] = true
		}
		for r := range unsettled {
			want[r] = true
		}
		got := recovered(t, j.cfg.Path)
		if len(got) != len(want) {
			t.Fatalf("after record %d: Recover returned %d records, want %d (unsettled and begun since the last compaction)", i, len(got), len(want))
		}
		for _, r := range got {
			if !want[r] {
				t.Fatalf("after record %d: Recover returned %.5s…, settled before the last compaction", i, r)
			}
		}
	}
	if j.gen < 10 {
		t.Fatalf("%d compactions, want at least 10", j.gen)
	}
	if len(inodes) != 2 {
		t.Fatalf("the journal used %d files over %d compactions, want 2 (it recycles the one it replaced)", len(inodes), j.gen)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.cfg.Path + ".spare"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare after Close: %v", err)
	}
	got := recovered(t, j.cfg.Path)
	for _, r := range got {
		delete(unsettled, r)
	}
	if len(unsettled) != 0 {
		t.Fatalf("Recover after Close lost %d unsettled records", len(unsettled))
	}
}

// TestOpenRemovesLeftoverSpare: a spare, or a compaction's second name,
// that a crash left behind is removed at Open; Recover never reads them.
func TestOpenRemovesLeftoverSpare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	for _, p := range []string{path + ".spare", path + ".prev"} {
		os.WriteFile(p, append([]byte(header), 1, 0, 0, 0, 0, 0, 0, 0, 'x'), 0o600)
	}
	if got := recovered(t, path); len(got) != 0 {
		t.Fatalf("Recover read a leftover spare: %q", got)
	}
	open(t, Config{Path: path})
	for _, p := range []string{path + ".spare", path + ".prev"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after Open: %v", p, err)
		}
	}
}

// TestCompactionWithoutHardLinks: where the replaced file cannot be kept
// (here its second name is taken), compaction makes a new file each time,
// as before, and loses nothing.
func TestCompactionWithoutHardLinks(t *testing.T) {
	j := open(t, Config{MaxSize: 4096})
	if err := os.Mkdir(j.cfg.Path+".prev", 0o700); err != nil {
		t.Fatal(err)
	}
	keep := begin(t, j, "keep")
	for i := range 200 {
		j.Done(begin(t, j, fmt.Sprintf("%04d%s", i, strings.Repeat("w", 100))))
	}
	if j.gen == 0 {
		t.Fatal("no compaction ran")
	}
	if j.spare != nil {
		t.Fatal("a spare was kept without its second name")
	}
	if got := recovered(t, j.cfg.Path); len(got) == 0 || got[0] != "keep" {
		t.Fatalf("Recover lost the unsettled record: %.20q", got)
	}
	j.Done(keep)
}
