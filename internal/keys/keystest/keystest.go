// Package keystest starts real key devices for tests: a fresh SoftHSM2
// token and a fresh swtpm TPM 2.0 simulator. A test that needs one skips
// when the tool is not installed, except under CI=true, where .ci/run
// installs them and a missing tool fails the test.
package keystest

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/keys"
)

// need skips t (or fails it under CI=true) when tool is missing.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: .ci/run installs the %s package)", tool, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s)", tool, pkg)
	return ""
}

// SoftHSMModules are the places Debian installs the SoftHSM2 library.
var SoftHSMModules = []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}

var (
	hsmOnce sync.Once
	hsmDir  string
	hsmErr  error
)

// Token is an initialized SoftHSM2 token.
type Token struct {
	Module string
	Label  string
	PIN    string
}

// Config returns the keys.PKCS11Config of the token.
func (tk Token) Config() keys.PKCS11Config {
	return keys.PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}
}

// SoftHSM initializes a new SoftHSM2 token with a random label and PIN
// and deletes it when t ends. Every token of a test binary lives in one
// token directory named by SOFTHSM2_CONF, because the library reads that
// variable once per process.
func SoftHSM(t testing.TB) Token {
	t.Helper()
	util := need(t, "softhsm2-util", "softhsm2")
	var module string
	for _, m := range SoftHSMModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		t.Fatalf("softhsm2-util is installed but libsofthsm2.so is not in %v", SoftHSMModules)
	}
	hsmOnce.Do(func() {
		if conf := os.Getenv("SOFTHSM2_CONF"); conf != "" {
			return
		}
		hsmDir, hsmErr = os.MkdirTemp("", "writ-softhsm-")
		if hsmErr != nil {
			return
		}
		tokens := filepath.Join(hsmDir, "tokens")
		conf := filepath.Join(hsmDir, "softhsm2.conf")
		if hsmErr = os.Mkdir(tokens, 0o700); hsmErr != nil {
			return
		}
		hsmErr = os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
		if hsmErr == nil {
			hsmErr = os.Setenv("SOFTHSM2_CONF", conf)
		}
	})
	if hsmErr != nil {
		t.Fatalf("prepare SoftHSM2 token directory: %v", hsmErr)
	}
	tk := Token{Module: module, Label: "writ-test-" + strings.ToLower(rand.Text()[:10]), PIN: rand.Text()[:12]}
	out, err := exec.Command(util, "--init-token", "--free", "--label", tk.Label, "--pin", tk.PIN, "--so-pin", rand.Text()[:12]).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command(util, "--delete-token", "--token", tk.Label).Run()
	})
	return tk
}

// TPM is a running swtpm simulator.
type TPM struct {
	// Addr is the command address, Platform the platform (control) one.
	Addr, Platform string
	dir            string
	adjacent       bool // the control port is the command port + 1
	cmd            *exec.Cmd
	exited         chan error
}

// Config returns the keys.TPMConfig of the simulator.
func (tp *TPM) Config() keys.TPMConfig {
	return keys.TPMConfig{TCP: tp.Addr, TCPPlatform: tp.Platform}
}

// SWTPM starts a fresh swtpm TPM 2.0 simulator on two loopback listeners
// it is handed (no port races) and stops it when t ends. Its state lives
// in a temporary directory, so it is a new TPM each time unless Restart
// is used.
func SWTPM(t testing.TB) *TPM {
	t.Helper()
	need(t, "swtpm", "swtpm")
	tp := &TPM{dir: t.TempDir()}
	tp.start(t)
	t.Cleanup(tp.stop)
	return tp
}

// StartSWTPM starts a fresh swtpm keeping its state in dir, for callers
// without a testing.TB (script tests), with its control port next to its
// command port (so the command address alone names it); Stop ends it.
func StartSWTPM(dir string) (*TPM, error) {
	tp := &TPM{dir: dir, adjacent: true}
	var err error
	for range 5 {
		if err = tp.tryStart(); err == nil {
			return tp, nil
		}
	}
	return nil, err
}

// Stop stops the simulator.
func (tp *TPM) Stop() { tp.stop() }

func (tp *TPM) start(t testing.TB) {
	t.Helper()
	var err error
	// swtpm binds the ports itself (handing it listening sockets made it
	// accept nothing), so a port taken between choosing and binding is
	// retried with others.
	for range 5 {
		if err = tp.tryStart(); err == nil {
			return
		}
	}
	t.Fatal(err)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (tp *TPM) tryStart() error {
	cp, err := freePort()
	if err != nil {
		return err
	}
	pp, err := freePort()
	if err != nil {
		return err
	}
	if tp.adjacent {
		// The control port is the command port + 1, which is what
		// writ assumes when only the command address is configured.
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cp+1))
		if err != nil {
			return err
		}
		l.Close()
		pp = cp + 1
	}
	tp.Addr, tp.Platform = fmt.Sprintf("127.0.0.1:%d", cp), fmt.Sprintf("127.0.0.1:%d", pp)
	logFile := filepath.Join(tp.dir, "swtpm.log")
	c := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+tp.dir,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", cp),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", pp),
		"--flags", "not-need-init,startup-clear", "--log", "file="+logFile)
	if err := c.Start(); err != nil {
		return fmt.Errorf("start swtpm: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := keys.OpenTPM(tp.Config())
		if err == nil {
			p.Close()
			tp.cmd, tp.exited = c, exited
			return nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("swtpm exited: %v\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			<-exited
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("swtpm did not answer: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tp *TPM) stop() {
	if tp.cmd != nil && tp.cmd.Process != nil {
		tp.cmd.Process.Kill()
		<-tp.exited
		tp.cmd = nil
	}
}

// Restart stops the simulator and starts it again on the same state, as a
// host reboot would: keys sealed to it still load.
func (tp *TPM) Restart(t testing.TB) {
	t.Helper()
	tp.stop()
	tp.start(t)
}

// String names the simulator for messages.
func (tp *TPM) String() string { return fmt.Sprintf("swtpm %s", tp.Addr) }
