package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// FileSender appends each signed checkpoint to a file (created with mode
// 0600), one note after another, and syncs it. It never answers with a
// cosignature.
type FileSender struct {
	Path string
}

// Send implements [Sender].
func (s FileSender) Send(ctx context.Context, signed []byte) ([]byte, error) {
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("append to witness file: %w", err)
	}
	_, err = f.Write(signed)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("append to witness file %s: %w", s.Path, err)
	}
	return nil, nil
}

// HTTPSender POSTs each signed checkpoint to a URL (Content-Type
// text/plain). A 2xx answer's body, if not empty, is taken as the
// witness's cosigned checkpoint; any other status is a failure.
type HTTPSender struct {
	URL string
	// Client makes the request. Default: a client with no timeout of its
	// own (the witness's Timeout bounds each delivery).
	Client *http.Client
}

// Send implements [Sender].
func (s HTTPSender) Send(ctx context.Context, signed []byte) ([]byte, error) {
	where := s.URL
	if u, err := url.Parse(s.URL); err == nil {
		where = u.Redacted()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(signed))
	if err != nil {
		return nil, fmt.Errorf("post checkpoint to %s: %w", where, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	c := s.Client
	if c == nil {
		c = &http.Client{}
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, which may carry a password
		}
		return nil, fmt.Errorf("post checkpoint to %s: %w", where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("post checkpoint to %s: read answer: %w", where, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("post checkpoint to %s: %s: %s", where, resp.Status, firstLine(body))
	}
	return body, nil
}

// CommandSender runs a program with each signed checkpoint on its standard
// input; what it prints on standard output, if anything, is taken as its
// cosigned checkpoint. A non-zero exit is a failure. The program gets no
// environment but PATH and HOME, so that writ's own secrets (WRIT_KEK,
// WRIT_TOKEN) never reach it.
type CommandSender struct {
	Argv []string
}

// Send implements [Sender].
func (s CommandSender) Send(ctx context.Context, signed []byte) ([]byte, error) {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return nil, errors.New("run witness command: no program given")
	}
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Stdin = bytes.NewReader(signed)
	stdout := &capped{max: maxCheckpointSize + 1}
	stderr := &capped{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if msg := firstLine(stderr.Bytes()); msg != "" {
			return nil, fmt.Errorf("run witness command %s: %v: %s", s.Argv[0], err, msg)
		}
		return nil, fmt.Errorf("run witness command %s: %v", s.Argv[0], err)
	}
	return stdout.Bytes(), nil
}

// capped is a buffer that keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// firstLine returns the first line of b, trimmed and shortened, for error
// messages.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
