package auditlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the log's signed statement of its size and root hash. Its
// text is the body of a signed note (golang.org/x/mod/sumdb/note) in the
// transparency-log checkpoint format (C2SP tlog-checkpoint):
//
//	<origin>
//	<size, decimal>
//	<root hash, standard base64>
//
// followed by a blank line and the signature line of the log key.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Hash   tlog.Hash `json:"root"`
}

// maxCheckpointSize bounds the signed notes ParseCheckpoint and
// OpenCheckpoint accept.
const maxCheckpointSize = 16 << 10

// Text returns the checkpoint's note text.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint's note text (without signatures).
// It accepts only the canonical form that [Checkpoint.Text] produces.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(text) > maxCheckpointSize {
		return c, fmt.Errorf("parse checkpoint: %d bytes, over the limit of %d", len(text), maxCheckpointSize)
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return c, errors.New("parse checkpoint: want exactly three lines (origin, size, root hash), each ending in a newline")
	}
	c.Origin = lines[0]
	if err := checkOrigin(c.Origin); err != nil {
		return c, fmt.Errorf("parse checkpoint: %v", err)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return c, fmt.Errorf("parse checkpoint: size %q is not a non-negative decimal number", lines[1])
	}
	c.Size = size
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return c, fmt.Errorf("parse checkpoint: root hash %q is not %d bytes of standard base64", lines[2], tlog.HashSize)
	}
	copy(c.Hash[:], h)
	return c, nil
}

// checkOrigin reports whether s can be a checkpoint's first line.
func checkOrigin(s string) error {
	if s == "" {
		return errors.New("origin is empty")
	}
	if !utf8.ValidString(s) {
		return errors.New("origin is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("origin %q contains a control character", s)
		}
	}
	return nil
}

// SignCheckpoint signs c with s and returns the signed note.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if err := checkOrigin(c.Origin); err != nil {
		return nil, fmt.Errorf("sign checkpoint: %v", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Text())}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint checks the signature on a signed checkpoint against the
// trusted keys and parses it. It fails unless at least one trusted key has
// signed the note and no trusted key's signature is invalid.
func OpenCheckpoint(msg []byte, trusted note.Verifiers) (Checkpoint, error) {
	if len(msg) > maxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("open checkpoint: %d bytes, over the limit of %d", len(msg), maxCheckpointSize)
	}
	n, err := note.Open(msg, trusted)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return Checkpoint{}, fmt.Errorf("open checkpoint: not signed by a trusted log key (signed by %s)", signerNames(unverified.Note))
		}
		return Checkpoint{}, fmt.Errorf("open checkpoint: %w", err)
	}
	return ParseCheckpoint([]byte(n.Text))
}

func signerNames(n *note.Note) string {
	var names []string
	for _, s := range n.UnverifiedSigs {
		names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	if len(names) == 0 {
		return "no one"
	}
	return strings.Join(names, ", ")
}

// ReadSignedCheckpoint normalises a signed checkpoint a user saved: it
// drops surrounding blank lines and whitespace and CRLF line endings, as a
// copy from a terminal or an editor may add them.
func ReadSignedCheckpoint(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.TrimLeft(b, " \t\r\n")
	b = bytes.TrimRight(b, " \t\r\n")
	return append(b, '\n')
}
