//go:build ignore

// gen writes the inputs of the secret-scanning benchmark (bench/README.md,
// "Secret scanning"): a working tree and a git fast-import stream of a
// history, both made of GOROOT's sources with planted secrets and
// look-alikes at known places. The planted values are built from a hash of
// a label, as the tests build theirs: credential-shaped, not credentials.
//
//	go run gen.go -tree DIR -tree-mb 200 -history FILE -commits 10000
package main

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func fake(label, alphabet string, n int) string {
	var b strings.Builder
	seed := sha256.Sum256([]byte(label))
	for b.Len() < n {
		for _, c := range seed {
			if b.Len() == n {
				break
			}
			b.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		seed = sha256.Sum256(seed[:])
	}
	return b.String()
}

// planted returns the i-th planted secret line (one of a few providers)
// and a look-alike line that no scanner should report.
func planted(i int) (secret, lookalike string) {
	l := fmt.Sprint("plant", i)
	switch i % 4 {
	case 0:
		secret = "GITHUB_TOKEN=ghp_" + fake(l, alnum, 36)
	case 1:
		secret = "aws_access_key_id = AKIA" + fake(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	case 2:
		secret = "STRIPE_KEY=sk_live_" + fake(l, alnum, 24)
	case 3:
		secret = "gitlab: glpat-" + fake(l, alnum+"_-", 20)
	}
	switch i % 3 {
	case 0:
		lookalike = "request_id = \"123e4567-e89b-12d3-a456-" + fake(l+"u", "0123456789abcdef", 12) + "\""
	case 1:
		lookalike = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"
	case 2:
		lookalike = "checksum: sha256:" + fake(l+"h", "0123456789abcdef", 64)
	}
	return secret, lookalike
}

func sources() [][]byte {
	var out [][]byte
	root := filepath.Join(runtime.GOROOT(), "src")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.Contains(p, "testdata") {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			out = append(out, b)
		}
		return nil
	})
	return out
}

func main() {
	tree := flag.String("tree", "", "write a working tree here")
	treeMB := flag.Int("tree-mb", 200, "working tree size in MiB")
	history := flag.String("history", "", "write a git fast-import stream here")
	commits := flag.Int("commits", 10000, "commits in the history")
	plantedN := flag.Int("planted", 0, "print the history's first N planted secret and look-alike lines (S and L, tab-separated) and exit")
	plantedTree := flag.Bool("planted-tree", false, "with -planted: the working tree's instead")
	flag.Parse()
	if *plantedN > 0 {
		base := 1_000_000
		if *plantedTree {
			base = 0
		}
		for k := range *plantedN {
			s, l := planted(base + k)
			fmt.Printf("S\t%s\nL\t%s\n", s, l)
		}
		return
	}
	src := sources()
	if len(src) == 0 {
		log.Fatal("no sources under GOROOT/src")
	}
	if *tree != "" {
		total, i := 0, 0
		for total < *treeMB<<20 {
			body := string(src[i%len(src)])
			if i%50 == 0 {
				s, la := planted(i / 50)
				body = s + "\n" + la + "\n" + body
			}
			p := filepath.Join(*tree, fmt.Sprintf("d%03d", i/500), fmt.Sprintf("f%05d.go", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				log.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				log.Fatal(err)
			}
			total += len(body)
			i++
		}
		fmt.Printf("tree: %d files, %.1f MiB, %d planted\n", i, float64(total)/(1<<20), (i+49)/50)
	}
	if *history != "" {
		f, err := os.Create(*history)
		if err != nil {
			log.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		total, planted0 := 0, 0
		for c := 0; c < *commits; c++ {
			branch := "refs/heads/main"
			if c%100 == 99 {
				branch = "refs/heads/side"
			}
			fmt.Fprintf(w, "commit %s\nmark :%d\ncommitter Ada <ada@example.com> %d +0000\ndata 10\ncommit %03d\n", branch, c+1, 1767225600+c*60, c%1000)
			if c == 99 {
				fmt.Fprintf(w, "from :%d\n", 98)
			}
			// Each commit rewrites one of 200 files with another source.
			body := string(src[(c*7)%len(src)])
			if c%25 == 0 {
				s, la := planted(1_000_000 + c/25)
				body = s + "\n" + la + "\n" + body
				planted0++
			}
			fmt.Fprintf(w, "M 100644 inline pkg%02d/file%03d.go\ndata %d\n%s\n", (c%200)/20, c%200, len(body), body)
			total += len(body)
		}
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		f.Close()
		fmt.Printf("history: %d commits, %.1f MiB of blobs, %d planted\n", *commits, float64(total)/(1<<20), planted0)
	}
}
