// Package journal is a write-ahead file of intents: records that must
// survive a crash of the process between the moment something is decided
// and the moment its full account reaches the audit log.
//
// The access enforcer writes an access's decision here before it is
// carried out ([Journal.Begin]), and a refused access's event before the
// refusal is answered ([Journal.BeginWritten]); once the access's one
// audit event is durable in the log, it settles the record ([Journal.Done]). A record that was begun but never
// settled is an access the log may not hold; [Recover] returns those after
// a crash so that the proxy can record them before it serves again.
//
// A record is written to a file in the page cache: it survives a crash of
// writ. Without Sync the file is mapped into memory (its blocks reserved
// with fallocate, so that a full disk cannot fault a write) and a record
// is a copy into the mapping, with no system call; where the file system
// cannot reserve blocks, and with Sync, a record is one write(2). With
// Sync set, [Journal.Begin] also waits for an fdatasync that covers it
// (one fsync serves every record written while the previous one ran), so
// that it survives a power loss too. The file only ever holds the
// records begun since it was last compacted: when it grows past MaxSize,
// the records still unsettled (at most the requests in flight) are copied
// into another file that atomically replaces it (rename(2)).
//
// A mapped journal keeps the file it replaced, mapped, as the spare that
// the next compaction writes into (under the name PATH.spare): its pages
// are in memory and mapped already, where a new file's would each cost a
// page fault on the first record written to them (2.5 µs a record on a
// shared 2-vCPU VM, 3% of the proxy's CPU under load; bench/README
// "Proxy"). The spare is cleared past the records copied into it, so a
// file never holds stale records after its own.
//
// The format is a header line, "writ-journal 1\n", then records, each a
// little-endian uint32 length, a little-endian uint32 CRC-32C of the
// payload, and the payload (never empty). A zero length ends the records:
// a mapped file is longer than its records, zero past them, and a mapped
// record's length is written last. A torn last record (a power loss in
// the middle of a write) is ignored.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/writ-dev/writ/internal/fsync"
	"golang.org/x/sys/unix"
)

// header starts every journal file.
const header = "writ-journal 1\n"

// frameLen is the size of a record's length and checksum.
const frameLen = 8

// MaxRecord bounds a record's payload.
const MaxRecord = 1 << 20

// DefaultMaxSize is the file size past which a journal is compacted: at
// 10,000 records a second, about ten compactions a second, each a copy
// of the unsettled records, a hard link and two renames.
const DefaultMaxSize = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by [Journal.Begin] after [Journal.Close].
var ErrClosed = errors.New("journal is closed")

// Config configures [Open].
type Config struct {
	// Path is the journal file. Its directory must exist.
	Path string
	// Sync makes Begin wait until the record is on disk (fdatasync).
	Sync bool
	// MaxSize is the file size past which settled records are dropped by
	// compaction. Default DefaultMaxSize.
	MaxSize int64
	// sync replaces fdatasync (tests).
	sync func(*os.File) error
	// noMap makes the journal write(2) its records (tests).
	noMap bool
}

// Ticket names a begun record until it is settled with [Journal.Done].
type Ticket uint64

// span is where an unsettled record's frame lies in the current file.
type span struct {
	off int64
	n   int64
}

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	cfg Config

	// syncMu is held while the file is fsynced (by Begin in Sync mode)
	// or replaced (by compaction), so that one fsync runs at a time and
	// followers find their records covered by the leader's.
	syncMu sync.Mutex

	mu     sync.Mutex // guards the fields below
	f      *os.File
	m      []byte // f mapped shared, its whole length; nil: records are written with pwrite
	gen    uint64 // bumped each time the file is replaced
	size   int64  // bytes written to f
	synced int64  // bytes of f known to be on disk (Sync mode)
	open   map[Ticket]span
	next   Ticket
	buf    []byte
	failed error // a write, sync or compaction failed: no further records
	closed bool

	// The spare file (mapped journals only): the file the last compaction
	// replaced, named PATH.spare, mapped as spareM, nonzero at most in its
	// first spareUsed bytes; nil before the first compaction, and for
	// good once the file system refused a hard link (noSpare).
	spare     *os.File
	spareM    []byte
	spareUsed int64
	noSpare   bool

	// order and idle are compaction's scratch: the unsettled tickets, and
	// the map of the records' spans it fills for the new file.
	order []Ticket
	idle  map[Ticket]span
}

// Recover reads the records of the journal at path that were begun and
// never settled, in the order they were written: the accesses a crash may
// have kept from the log. A missing file holds none. Records after a
// damaged one are not returned; damaged reports whether the file had one
// (normally the torn tail of a write cut by a power loss).
func Recover(path string) (recs [][]byte, damaged bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read journal: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(header)) {
		if len(b) < len(header) && bytes.HasPrefix([]byte(header), b) {
			return nil, len(b) > 0, nil // cut while being created
		}
		return nil, false, fmt.Errorf("read journal %s: not a writ journal (it does not start with %q); move it away if it is not writ's", path, header[:len(header)-1])
	}
	b = b[len(header):]
	for len(b) > 0 {
		if len(b) < frameLen {
			return recs, true, nil
		}
		n := binary.LittleEndian.Uint32(b)
		sum := binary.LittleEndian.Uint32(b[4:])
		if n == 0 {
			// The end of the records; a mapped file is zero past it.
			// Anything but zeros after it is damage.
			return recs, !allZero(b), nil
		}
		if n > MaxRecord || int64(len(b)-frameLen) < int64(n) {
			return recs, true, nil
		}
		p := b[frameLen : frameLen+int(n)]
		if crc32.Checksum(p, crcTable) != sum {
			return recs, true, nil
		}
		recs = append(recs, bytes.Clone(p))
		b = b[frameLen+int(n):]
	}
	return recs, false, nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Open creates a new, empty journal at cfg.Path, replacing any file there:
// call [Recover] first and record what it returns. The new file is on disk
// when Open returns, so a crash after it does not bring back the old
// records.
func Open(cfg Config) (*Journal, error) {
	if cfg.Path == "" {
		return nil, errors.New("open journal: no path")
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.sync == nil {
		cfg.sync = fsync.Data
	}
	j := &Journal{cfg: cfg, open: map[Ticket]span{}}
	// A spare (or the link made while one is swapped in) that a crash
	// left behind holds nothing Recover reads.
	for _, p := range []string{j.spareName(), j.prevName()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open journal: remove the old spare: %w", err)
		}
	}
	f, m, err := j.create(nil, cfg.Sync)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.f, j.m, j.size, j.synced = f, m, int64(len(header)), int64(len(header))
	return j, nil
}

// mapped returns f's first size bytes reserved on disk and mapped shared,
// or nil when the journal writes its records (Sync, or a file system that
// cannot reserve blocks: a write into a mapping of an unreserved block
// faults the process when the disk is full, where write(2) fails).
func (j *Journal) mapped(f *os.File, size int64) ([]byte, error) {
	if j.cfg.Sync || j.cfg.noMap {
		return nil, nil
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			return nil, nil
		}
		return nil, fmt.Errorf("reserve %d bytes for %s: %w", size, f.Name(), err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", f.Name(), err)
	}
	return m, nil
}

// mapSize is the length a mapped file is given: room for MaxSize of
// records before compaction, and for a largest record past it.
func (j *Journal) mapSize() int64 {
	return int64(len(header)) + j.cfg.MaxSize + 2*(frameLen+MaxRecord)
}

// create writes a new journal file holding header and then frames and
// renames it over cfg.Path; if durable, the file and the rename are synced
// first. Without Sync the journal promises to survive a crash of writ, for
// which the rename alone is enough (the kernel has the file).
func (j *Journal) create(frames []byte, durable bool) (*os.File, []byte, error) {
	tmp := j.cfg.Path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	var m []byte
	fail := func(err error) (*os.File, []byte, error) {
		if m != nil {
			unix.Munmap(m)
		}
		f.Close()
		os.Remove(tmp)
		return nil, nil, err
	}
	if _, err := f.Write(append([]byte(header), frames...)); err != nil {
		return fail(err)
	}
	if m, err = j.mapped(f, max(j.mapSize(), int64(len(header)+len(frames))+frameLen+MaxRecord)); err != nil {
		return fail(err)
	}
	if durable {
		if err := j.cfg.sync(f); err != nil {
			return fail(fmt.Errorf("fdatasync %s: %w", tmp, err))
		}
	}
	if err := os.Rename(tmp, j.cfg.Path); err != nil {
		return fail(err)
	}
	if durable {
		if err := fsync.Dir(filepath.Dir(j.cfg.Path)); err != nil {
			if m != nil {
				unix.Munmap(m)
			}
			f.Close()
			return nil, nil, err
		}
	}
	return f, m, nil
}

// Begin appends rec and returns its ticket once it is written (and, in
// Sync mode, on disk). An error means the record may not be kept: the
// caller must not act on it. After a failed write or sync, every later
// Begin fails too (fail closed) until the journal is opened again.
func (j *Journal) Begin(rec []byte) (Ticket, error) {
	return j.begin(rec, j.cfg.Sync)
}

// BeginWritten is Begin without waiting for the record's sync in Sync mode:
// it returns once the record is written (it survives a crash of writ, not
// a power loss), for records whose action has already happened.
func (j *Journal) BeginWritten(rec []byte) (Ticket, error) {
	return j.begin(rec, false)
}

func (j *Journal) begin(rec []byte, sync bool) (Ticket, error) {
	if len(rec) > MaxRecord {
		return 0, fmt.Errorf("journal record of %d bytes is over the %d-byte limit", len(rec), MaxRecord)
	}
	if len(rec) == 0 {
		return 0, errors.New("journal record is empty")
	}
	sum := crc32.Checksum(rec, crcTable)
	n := int64(frameLen + len(rec))
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return 0, err
	}
	off := j.size
	if j.m != nil && off+n > int64(len(j.m)) {
		// Records begun faster than compaction runs: no write may go
		// past the mapping.
		if err := j.grow(off + n); err != nil {
			j.failed = fmt.Errorf("journal %s unusable: %v; restart writ", j.cfg.Path, err)
			j.mu.Unlock()
			return 0, j.failed
		}
	}
	if j.m != nil {
		// The payload and checksum first, the length last: until the
		// length is there, Recover reads the end of the records.
		fr := j.m[off : off+n]
		copy(fr[frameLen:], rec)
		binary.LittleEndian.PutUint32(fr[4:], sum)
		binary.LittleEndian.PutUint32(fr, uint32(len(rec)))
	} else {
		b := binary.LittleEndian.AppendUint32(j.buf[:0], uint32(len(rec)))
		b = binary.LittleEndian.AppendUint32(b, sum)
		b = append(b, rec...)
		j.buf = b
		if _, err := j.f.WriteAt(b, off); err != nil {
			// A short write leaves a torn record that Recover would
			// stop at; cut it off, or stop taking records.
			if terr := j.f.Truncate(off); terr != nil {
				j.failed = fmt.Errorf("journal %s unusable after a failed write (%v) and truncate: %v; restart writ", j.cfg.Path, err, terr)
			}
			j.mu.Unlock()
			return 0, fmt.Errorf("write journal %s: %w", j.cfg.Path, err)
		}
	}
	j.size += n
	t := j.next
	j.next++
	j.open[t] = span{off, n}
	gen, end := j.gen, j.size
	j.mu.Unlock()
	if sync {
		if err := j.waitSynced(gen, end); err != nil {
			return 0, err
		}
	}
	return t, nil
}

// grow maps the file again at least size bytes long (twice as long as now
// at least). j.mu is held.
func (j *Journal) grow(size int64) error {
	m, err := j.mapped(j.f, max(size, 2*int64(len(j.m))))
	if err != nil {
		return err
	}
	if m == nil {
		return errors.New("the file system no longer reserves blocks for the journal")
	}
	if err := unix.Munmap(j.m); err != nil {
		unix.Munmap(m)
		return fmt.Errorf("unmap: %w", err)
	}
	j.m = m
	return nil
}

// usable returns why no record can be taken, if one cannot. j.mu is held.
func (j *Journal) usable() error {
	if j.closed {
		return ErrClosed
	}
	return j.failed
}

// waitSynced returns once the file of generation gen is on disk up to end:
// it syncs, unless a sync that started after end was written covered it.
func (j *Journal) waitSynced(gen uint64, end int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if err := j.failed; err != nil {
		j.mu.Unlock()
		return err
	}
	if j.gen != gen || j.synced >= end {
		// Covered: a compaction syncs the file it creates.
		j.mu.Unlock()
		return nil
	}
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	f, size := j.f, j.size
	j.mu.Unlock()
	err := j.cfg.sync(f)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.failed = fmt.Errorf("journal %s unusable after a failed fdatasync: %v; restart writ", j.cfg.Path, err)
		return j.failed
	}
	j.synced = size
	return nil
}

// Done settles t: its access is in the audit log, so the record is no
// longer needed. Once the file has grown past MaxSize the unsettled records
// are moved to a new file (compaction).
func (j *Journal) Done(t Ticket) {
	j.mu.Lock()
	delete(j.open, t)
	grown := j.size > j.cfg.MaxSize && !j.closed && j.failed == nil
	j.mu.Unlock()
	if grown {
		j.compact()
	}
}

// Pending returns the number of records begun and not settled.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.open)
}

// compact replaces the file with one holding only the unsettled records.
// Until the rename, the old file holds them all; after it, the new one
// does, and it was synced first. Records begun meanwhile wait (j.mu).
func (j *Journal) compact() {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.size <= j.cfg.MaxSize || j.closed || j.failed != nil {
		return // another Done did it
	}
	// The unsettled records, in the order begun, and where they go. The
	// ticket list and the map are reused from one compaction to the next.
	j.order = j.order[:0]
	end := int64(len(header))
	for t, s := range j.open {
		j.order = append(j.order, t)
		end += s.n
	}
	slices.Sort(j.order)
	moved := j.idle
	if moved == nil {
		moved = make(map[Ticket]span, len(j.open))
	}
	off := int64(len(header))
	for _, t := range j.order {
		s := j.open[t]
		moved[t] = span{off, s.n}
		off += s.n
	}
	// Keep the file being replaced, under a second name, as the next
	// spare (mapped journals only).
	keep := j.m != nil && !j.noSpare
	if keep {
		if err := os.Link(j.cfg.Path, j.prevName()); err != nil {
			keep, j.noSpare = false, true
		}
	}
	f, m, err := j.fromSpare(end)
	if err == nil && f == nil {
		var frames []byte
		if frames, err = j.unsettled(end); err == nil {
			f, m, err = j.create(frames, j.cfg.Sync)
		}
	}
	if err != nil {
		if keep {
			os.Remove(j.prevName())
		}
		clear(moved)
		j.idle = moved
		j.failed = fmt.Errorf("compact journal %s: %v; restart writ", j.cfg.Path, err)
		return
	}
	j.dropSpare() // a spare fromSpare did not use: it was too small
	if keep && os.Rename(j.prevName(), j.spareName()) == nil {
		j.spare, j.spareM, j.spareUsed = j.f, j.m, j.size
	} else {
		if keep {
			os.Remove(j.prevName())
		}
		j.unmap()
		j.f.Close()
	}
	clear(j.open)
	j.idle = j.open
	j.f, j.m, j.open, j.gen = f, m, moved, j.gen+1
	j.size = end
	j.synced = j.size
}

// unsettled returns the frames of the unsettled records in the order
// begun (j.order), end-len(header) bytes. j.mu is held.
func (j *Journal) unsettled(end int64) ([]byte, error) {
	frames := make([]byte, 0, end-int64(len(header)))
	for _, t := range j.order {
		s := j.open[t]
		frames = frames[:len(frames)+int(s.n)]
		if _, err := j.f.ReadAt(frames[len(frames)-int(s.n):], s.off); err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
	}
	return frames, nil
}

// fromSpare copies the header and the unsettled records (j.order, ending
// at end) from the current mapping into the spare file, clears the rest
// of its old records, and renames it over cfg.Path; it returns a nil file
// when there is no spare with room for them and a largest record after
// them. Only mapped journals have a spare, and their compactions need no
// sync (see create). j.mu is held.
func (j *Journal) fromSpare(end int64) (*os.File, []byte, error) {
	if j.spare == nil || j.m == nil || end+frameLen+MaxRecord > int64(len(j.spareM)) {
		return nil, nil, nil
	}
	copy(j.spareM, header)
	off := int64(len(header))
	for _, t := range j.order {
		s := j.open[t]
		off += int64(copy(j.spareM[off:off+s.n], j.m[s.off:s.off+s.n]))
	}
	if j.spareUsed > end {
		clear(j.spareM[end:j.spareUsed])
	}
	if err := os.Rename(j.spareName(), j.cfg.Path); err != nil {
		return nil, nil, err
	}
	f, m := j.spare, j.spareM
	j.spare, j.spareM, j.spareUsed = nil, nil, 0
	return f, m, nil
}

// dropSpare unmaps, closes and removes the spare file, if there is one.
// j.mu is held.
func (j *Journal) dropSpare() {
	if j.spare == nil {
		return
	}
	unix.Munmap(j.spareM)
	j.spare.Close()
	os.Remove(j.spareName())
	j.spare, j.spareM, j.spareUsed = nil, nil, 0
}

// spareName is the spare file's name; prevName the second name the file
// being replaced gets while a compaction runs, until it is the spare.
func (j *Journal) spareName() string { return j.cfg.Path + ".spare" }
func (j *Journal) prevName() string  { return j.cfg.Path + ".prev" }

// Close closes the file. If no record is unsettled the file is removed, so
// a clean stop leaves nothing to recover; otherwise it is kept for
// [Recover].
func (j *Journal) Close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	j.dropSpare()
	j.unmap()
	err := j.f.Close()
	if len(j.open) == 0 && j.failed == nil {
		if rerr := os.Remove(j.cfg.Path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("close journal %s: %w", j.cfg.Path, err)
	}
	return nil
}

// unmap ends the current file's mapping, if it has one. j.mu is held.
func (j *Journal) unmap() {
	if j.m != nil {
		unix.Munmap(j.m) // fails only for a range that is not a mapping
		j.m = nil
	}
}

var _ io.Closer = (*Journal)(nil)
