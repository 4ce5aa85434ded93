package discover

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/writ-dev/writ/internal/secrets"
)

// maxCredFile bounds how much of a credential file is read.
const maxCredFile = 1 << 20

// credentialFiles are the files, relative to a home directory, that hold
// credentials, and what each is.
var credentialFiles = []struct{ rel, kind string }{
	{".aws/credentials", "aws-credentials"},
	{".aws/config", "aws-config"},
	{".config/gcloud/application_default_credentials.json", "gcloud-credentials"},
	{".config/gcloud/credentials.db", "gcloud-credentials"},
	{".config/gcloud/access_tokens.db", "gcloud-credentials"},
	{".azure/msal_token_cache.json", "azure-credentials"},
	{".kube/config", "kubeconfig"},
	{".docker/config.json", "docker-config"},
	{".netrc", "netrc"},
	{".npmrc", "npmrc"},
	{".pypirc", "pypirc"},
	{".git-credentials", "git-credentials"},
	{".config/gh/hosts.yml", "gh-hosts"},
}

// envCredentials returns the credentials in one environment
// (NAME=VALUE strings): variables named like secrets (API_KEY, TOKEN,
// SECRET, PASSWORD, ...) with a value of at least 8 bytes, and, when deep
// is set, every value in which d finds a secret of a known format.
func envCredentials(d *secrets.Detector, env []string, deep bool) []Credential {
	var out []Credential
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || len(value) < 8 || skipEnvName(name) {
			continue
		}
		kind := ""
		if deep || secretName(name) {
			if fs := d.Find([]byte(kv)); len(fs) > 0 {
				kind = fs[0].RuleID
			}
		}
		if kind == "" && secretName(name) {
			kind = "secret-variable"
		}
		if kind == "" {
			continue
		}
		out = append(out, Credential{Kind: kind, Source: "env", Name: name, Fingerprint: d.Fingerprint([]byte(value))})
	}
	return out
}

// skipEnvName reports variables whose names say secret but whose values
// are not: sockets, paths, identifiers.
func skipEnvName(name string) bool {
	n := strings.ToUpper(name)
	for _, s := range []string{"_SOCK", "_FILE", "_PATH", "_DIR", "_ID", "_URL_PATH", "_HOST", "_PORT", "_USER", "_USERNAME"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return n == "PWD" || n == "OLDPWD" || n == "XAUTHORITY"
}

// fileCredentials returns the credentials in one credential file: each
// secret d finds (named by the INI section or the key it sits under), or,
// when d finds none, the file itself as one credential (a kubeconfig with
// a client key, a binary token cache) fingerprinted whole.
func fileCredentials(d *secrets.Detector, path, kind string, data []byte) []Credential {
	var out []Credential
	for _, f := range d.Find(data) {
		out = append(out, Credential{Kind: f.RuleID, Source: "file", Name: sectionAt(data, f.Line), Path: path, Line: f.Line, Fingerprint: f.Fingerprint})
	}
	if len(out) == 0 && len(bytes.TrimSpace(data)) > 0 {
		out = append(out, Credential{Kind: kind, Source: "file", Path: path, Fingerprint: d.Fingerprint(data)})
	}
	return out
}

// sectionAt returns the name of the INI section ("[default]") that line
// (1-based) is in, or "" if there is none before it.
func sectionAt(data []byte, line int) string {
	name := ""
	n := 0
	for l := range bytes.Lines(data) {
		n++
		if n >= line {
			break
		}
		l = bytes.TrimSpace(l)
		if len(l) > 2 && l[0] == '[' && l[len(l)-1] == ']' {
			name = string(bytes.TrimSpace(l[1 : len(l)-1]))
		}
	}
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}

// credentialID derives a credential's stable id.
func credentialID(c Credential) string {
	h := sha256.New()
	for _, s := range []string{c.Source, c.Path, c.Name, c.Fingerprint, strconv.Itoa(c.UID)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "cred_" + hex.EncodeToString(h.Sum(nil)[:10])
}

func joinHome(home, rel string) string { return filepath.Join(home, filepath.FromSlash(rel)) }
