package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/cli"
	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"writ":         func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		"mcpstub":      func() { os.Exit(mcpStub()) },
		"fakeprovider": func() { os.Exit(fakeProvider()) },
	})
}

// TestScripts runs the CLI scenarios in testdata/*.txt against the real
// binary: each may start `writ serve` in the background on a free port.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		// [pg]: PostgreSQL is reachable, or CI=true (where it must be:
		// the script then fails instead of skipping). [psql]: the psql
		// client is installed, or CI=true. [swtpm]: the swtpm simulator
		// is installed, or CI=true.
		Condition: func(cond string) (bool, error) {
			if cond != "pg" && cond != "psql" && cond != "swtpm" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if os.Getenv("CI") == "true" {
				return true, nil
			}
			if cond == "psql" || cond == "swtpm" {
				_, err := exec.LookPath(cond)
				return err == nil, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return pgtest.Reachable(ctx), nil
		},
		Setup: func(env *testscript.Env) error {
			port, err := freePort()
			if err != nil {
				return err
			}
			env.Setenv("PORT", strconv.Itoa(port))
			proxyPort, err := freePort()
			if err != nil {
				return err
			}
			env.Setenv("PROXYPORT", strconv.Itoa(proxyPort))
			tlsPort, err := freePort()
			if err != nil {
				return err
			}
			env.Setenv("TLSPORT", strconv.Itoa(tlsPort))
			// A second server (scale-out scripts).
			for _, v := range []string{"PORT2", "TLSPORT2"} {
				p, err := freePort()
				if err != nil {
					return err
				}
				env.Setenv(v, strconv.Itoa(p))
			}
			pgProxyPort, err := freePort()
			if err != nil {
				return err
			}
			env.Setenv("PGPROXYPORT", strconv.Itoa(pgProxyPort))
			env.Setenv("WRIT_ADDR", fmt.Sprintf("http://127.0.0.1:%d", port))
			env.Setenv("UID", strconv.Itoa(os.Getuid()))
			// EXAMPLES is the repository's examples directory, for
			// scripts that check the documented examples work.
			examples, err := filepath.Abs("../../examples")
			if err != nil {
				return err
			}
			env.Setenv("EXAMPLES", examples)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitmetric URL NAME VALUE waits until the Prometheus metrics
			// at URL/metrics show NAME with VALUE (10s at most).
			"waitmetric": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 {
					ts.Fatalf("usage: waitmetric URL NAME VALUE")
				}
				want := args[1] + " " + args[2]
				deadline := time.Now().Add(2 * time.Minute)
				for time.Now().Before(deadline) {
					resp, err := http.Get(args[0] + "/metrics")
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						for _, line := range strings.Split(string(b), "\n") {
							if line == want {
								return
							}
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("%s/metrics never showed %q", args[0], want)
			},
			// until REGEX PROGRAM ARGS... runs the program until its
			// standard output matches REGEX (2 minutes at most), for
			// what happens in the background (a node's first scan).
			"until": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 || neg {
					ts.Fatalf("usage: until REGEX PROGRAM ARGS...")
				}
				re, err := regexp.Compile("(?m)" + args[0])
				ts.Check(err)
				deadline := time.Now().Add(2 * time.Minute)
				for {
					err := ts.Exec(args[1], args[2:]...)
					if err == nil && re.MatchString(ts.ReadFile("stdout")) {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s never printed %q (last: %v)", strings.Join(args[1:], " "), args[0], err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			},
			// waitready URL waits until GET URL answers 200. The limit
			// is generous on purpose: a server starting on a loaded
			// machine is slow, not broken.
			"waitready": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitready URL")
				}
				deadline := time.Now().Add(2 * time.Minute)
				for time.Now().Before(deadline) {
					resp, err := http.Get(args[0])
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("%s not ready after 2 minutes", args[0])
			},
			// startsleep runs sleep(1) until the script ends and sets
			// SLEEPPID to its pid and SLEEP to its executable.
			"startsleep": func(ts *testscript.TestScript, neg bool, args []string) {
				path, err := exec.LookPath("sleep")
				ts.Check(err)
				path, err = filepath.EvalSymlinks(path)
				ts.Check(err)
				cmd := exec.Command(path, "600")
				ts.Check(cmd.Start())
				ts.Defer(func() { cmd.Process.Kill(); cmd.Wait() })
				ts.Setenv("SLEEPPID", strconv.Itoa(cmd.Process.Pid))
				ts.Setenv("SLEEP", path)
			},
			// jsonenv VAR FIELD sets VAR to the string FIELD of the JSON
			// object the last command printed; FIELD may be a dotted path
			// with array indexes (alerts.0.id).
			"jsonenv": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: jsonenv VAR FIELD")
				}
				var cur any
				ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &cur))
				// FIELD may be a path: alerts.0.id.
				for _, k := range strings.Split(args[1], ".") {
					switch c := cur.(type) {
					case map[string]any:
						cur = c[k]
					case []any:
						i, err := strconv.Atoi(k)
						if err != nil || i < 0 || i >= len(c) {
							ts.Fatalf("no element %q in the last output", args[1])
						}
						cur = c[i]
					default:
						cur = nil
					}
				}
				v, ok := cur.(string)
				if !ok || v == "" {
					ts.Fatalf("no string field %q in the last output", args[1])
				}
				ts.Setenv(args[0], v)
			},
			// jwtclaim VAR CLAIM sets VAR to a string claim of the JWT the
			// last command printed (its payload is not verified).
			"jwtclaim": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: jwtclaim VAR CLAIM")
				}
				parts := strings.Split(strings.TrimSpace(ts.ReadFile("stdout")), ".")
				if len(parts) != 3 {
					ts.Fatalf("the last output is not a JWT")
				}
				payload, err := base64.RawURLEncoding.DecodeString(parts[1])
				ts.Check(err)
				var m map[string]any
				ts.Check(json.Unmarshal(payload, &m))
				v, _ := m[args[1]].(string)
				ts.Setenv(args[0], v)
			},
			// expandenv FILE replaces $VAR and ${VAR} in FILE with the
			// script's environment.
			"expandenv": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: expandenv FILE")
				}
				path := ts.MkAbs(args[0])
				ts.Check(os.WriteFile(path, []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o600))
			},
			// httpget URL FILE writes the body of GET URL (200) to FILE.
			"httpget": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: httpget URL FILE")
				}
				resp, err := http.Get(args[0])
				ts.Check(err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				ts.Check(err)
				if resp.StatusCode != http.StatusOK {
					ts.Fatalf("GET %s: %s", args[0], resp.Status)
				}
				ts.Check(os.WriteFile(ts.MkAbs(args[1]), b, 0o600))
			},
			// waitsock PATH waits until a unix socket at PATH accepts
			// connections (2 minutes at most: a loaded machine is slow).
			"waitsock": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: waitsock PATH")
				}
				for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if c, err := net.Dial("unix", ts.MkAbs(args[0])); err == nil {
						c.Close()
						return
					}
				}
				ts.Fatalf("nothing listens on %s after 2 minutes", args[0])
			},
			// waitrefused SOCKET waits until the Workload API at SOCKET
			// refuses this process an X.509-SVID (2 minutes at most), by
			// behaviour: how fast is measured by the benchmarks.
			"waitrefused": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: waitrefused SOCKET")
				}
				for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+ts.MkAbs(args[0])))
					cancel()
					if err != nil {
						ts.Logf("refused: %v", err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("the Workload API at %s still issues SVIDs after 2 minutes", args[0])
			},
			// pgdsn VAR creates an empty PostgreSQL database for the
			// script (dropped at its end) and sets VAR to its DSN; the
			// script is skipped without PostgreSQL, except under CI=true.
			"pgdsn": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: pgdsn VAR")
				}
				ts.Setenv(args[0], scriptDatabase(ts))
			},
			// pgdatabase creates a database as pgdsn does and sets PGURL
			// (no user), PGADMINURL (as the admin) and PGADMINUSER; it is
			// dropped, with the roles granted on it, when the script ends.
			"pgdatabase": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 0 || neg {
					ts.Fatalf("usage: pgdatabase")
				}
				pgDatabase(ts)
			},
			// swtpm VAR starts a fresh swtpm TPM 2.0 simulator for the
			// script (stopped at its end) and sets VAR to its command
			// address (guard the script with [!swtpm] skip: swtpm is installed,
			// or CI=true, where .ci/run installs it).
			"swtpm": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: swtpm VAR")
				}
				if _, err := exec.LookPath("swtpm"); err != nil {
					if os.Getenv("CI") == "true" {
						ts.Fatalf("swtpm is not installed (CI=true: .ci/run installs the swtpm package)")
					}
					ts.Fatalf("swtpm is not installed; guard the script with [!swtpm] skip")
				}
				dir := ts.MkAbs("swtpm-" + args[0])
				if err := os.MkdirAll(dir, 0o700); err != nil {
					ts.Fatalf("%v", err)
				}
				tp, err := keystest.StartSWTPM(dir)
				if err != nil {
					ts.Fatalf("%v", err)
				}
				ts.Defer(tp.Stop)
				ts.Setenv(args[0], tp.Addr)
			},
			// waitfor PROGRAM ARGS... runs the program until it succeeds
			// (every 50ms, 30s at most), for what happens shortly after a
			// command returns.
			"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) == 0 || neg {
					ts.Fatalf("usage: waitfor PROGRAM [ARGS...]")
				}
				var err error
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if err = ts.Exec(args[0], args[1:]...); err == nil {
						return
					}
				}
				ts.Fatalf("%s did not succeed within 30s: %v", args[0], err)
			},
			// envis VAR VALUE succeeds if $VAR is VALUE.
			"envis": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: envis VAR VALUE")
				}
				if got := ts.Getenv(args[0]); (got == args[1]) == neg {
					ts.Fatalf("$%s is %q (want it %sto be %q)", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
				}
			},
			// mode FILE OCTAL fails unless FILE's permission bits are OCTAL.
			"mode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: mode FILE OCTAL")
				}
				want, err := strconv.ParseUint(args[1], 8, 32)
				ts.Check(err)
				fi, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				if got := fi.Mode().Perm(); got != fs.FileMode(want) {
					ts.Fatalf("%s has mode %04o, want %04o", args[0], got, want)
				}
			},
			// private DIR fails unless every file under DIR (sockets
			// included) is its owner's alone: no group or other bits.
			"private": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 || neg {
					ts.Fatalf("usage: private DIR")
				}
				var open []string
				err := filepath.WalkDir(ts.MkAbs(args[0]), func(path string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					fi, err := d.Info()
					if err != nil {
						return err
					}
					ts.Logf("%v %s", fi.Mode(), path)
					if !d.IsDir() && fi.Mode().Perm()&0o077 != 0 {
						open = append(open, fmt.Sprintf("%s (%04o)", path, fi.Mode().Perm()))
					}
					return nil
				})
				ts.Check(err)
				if len(open) > 0 {
					ts.Fatalf("readable by other users: %s", strings.Join(open, ", "))
				}
			},
		},
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
