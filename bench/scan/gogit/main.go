// Command gogit measures the choice of `writ scan --git` (docs/scan.md):
// it reads every blob written by the history of a repository (the objects
// `writ scan --git` reads) two ways: git cat-file --batch (what writ scan
// does) and go-git v5 (BlobObject per id), alternating rounds; prints wall
// and CPU seconds and bytes.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

func cpu() time.Duration {
	var ru, rc syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &rc)
	t := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return t(ru) + t(rc)
}

func blobs(repo string) []string {
	out, err := exec.Command("git", "-C", repo, "log", "--all", "--raw", "--no-abbrev", "--format=", "-m", "--first-parent").Output()
	if err != nil {
		panic(err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.HasPrefix(f[0], ":") && f[3] != strings.Repeat("0", 40) && !seen[f[3]] {
			seen[f[3]] = true
			ids = append(ids, f[3])
		}
	}
	return ids
}

func catFile(repo string, ids []string) int64 {
	cmd := exec.Command("git", "-C", repo, "cat-file", "--batch")
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	cmd.Start()
	go func() {
		w := bufio.NewWriter(in)
		for _, id := range ids {
			w.WriteString(id + "\n")
		}
		w.Flush()
		in.Close()
	}()
	r := bufio.NewReaderSize(outp, 1<<20)
	var total int64
	buf := make([]byte, 0, 1<<20)
	for range ids {
		h, err := r.ReadString('\n')
		if err != nil {
			panic(err)
		}
		f := strings.Fields(h)
		n, _ := strconv.Atoi(f[2])
		if cap(buf) < n+1 {
			buf = make([]byte, n+1)
		}
		buf = buf[:n+1]
		if _, err := io.ReadFull(r, buf); err != nil {
			panic(err)
		}
		total += int64(n)
	}
	cmd.Wait()
	return total
}

func goGit(repo string, ids []string) int64 {
	rp, err := git.PlainOpen(repo)
	if err != nil {
		panic(err)
	}
	var total int64
	for _, id := range ids {
		b, err := rp.BlobObject(plumbing.NewHash(id))
		if err != nil {
			panic(err)
		}
		rd, _ := b.Reader()
		n, _ := io.Copy(io.Discard, rd)
		rd.Close()
		total += n
	}
	return total
}

func main() {
	repo := os.Args[1]
	rounds, _ := strconv.Atoi(os.Args[2])
	ids := blobs(repo)
	fmt.Printf("%d distinct blobs\n", len(ids))
	for r := 0; r < rounds; r++ {
		for _, m := range []struct {
			name string
			f    func(string, []string) int64
		}{{"git cat-file --batch", catFile}, {"go-git v5.19.3", goGit}} {
			c0, t0 := cpu(), time.Now()
			n := m.f(repo, ids)
			wall, c := time.Since(t0), cpu()-c0
			fmt.Printf("round %d %-22s %7.1f MiB wall %6.2fs cpu %6.2fs  %6.1f MiB/cpu-s\n", r, m.name, float64(n)/(1<<20), wall.Seconds(), c.Seconds(), float64(n)/(1<<20)/c.Seconds())
		}
	}
}
