package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"defaults", "", ""},
		{"pkcs11 ca", "keys:\n  x509_ca: pkcs11\n  pkcs11:\n    module: /usr/lib/softhsm/libsofthsm2.so\n    token_label: writ\n    pin_env: WRIT_PKCS11_PIN\n", ""},
		{"tpm jwt and kek", "keys:\n  jwt: tpm\n  kek: tpm\n  tpm:\n    device: /dev/tpmrm0\n", ""},
		{"unknown provider", "keys:\n  jwt: vault\n", `keys.jwt: "vault" is not a key provider`},
		{"unknown kek source", "keys:\n  kek: env\n", `keys.kek: "env" is not a key-encryption key source`},
		{"pkcs11 without device", "keys:\n  x509_ca: pkcs11\n", "keys.x509_ca: uses pkcs11 but keys.pkcs11 is not configured"},
		{"tpm without device", "keys:\n  kek: tpm\n", "keys.kek: uses tpm but keys.tpm is not configured"},
		{"no module", "keys:\n  pkcs11:\n    token_label: w\n    pin_env: P\n", "keys.pkcs11.module: not set"},
		{"two selectors", "keys:\n  pkcs11:\n    module: m\n    token_label: w\n    slot: 0\n    pin_env: P\n", "exactly one of token_label, token_serial and slot (2 are set)"},
		{"no pin source", "keys:\n  pkcs11:\n    module: m\n    token_label: w\n", "exactly one of pin_env and pin_file"},
		{"both pin sources", "keys:\n  pkcs11:\n    module: m\n    token_label: w\n    pin_env: P\n    pin_file: /f\n", "exactly one of pin_env and pin_file"},
		{"negative slot", "keys:\n  pkcs11:\n    module: m\n    slot: -1\n    pin_env: P\n", "keys.pkcs11.slot: -1 is negative"},
		{"tpm both", "keys:\n  tpm:\n    device: /dev/tpmrm0\n    tcp: 127.0.0.1:2321\n", "keys.tpm: set exactly one of device"},
		{"tpm bad address", "keys:\n  tpm:\n    tcp: localhost\n", `keys.tpm.tcp: "localhost" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			err = c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	// A PIN in writ.yaml is refused as an unknown key: it never goes there.
	if _, err := Load(write(t, "keys:\n  pkcs11:\n    pin: 1234\n")); err == nil || !strings.Contains(err.Error(), "keys.pkcs11.pin: unknown field") {
		t.Errorf("a pin key: %v", err)
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PIN_SET": "s3cret-pin"}
	getenv := func(k string) string { return env[k] }
	file := filepath.Join(dir, "pin")
	os.WriteFile(file, []byte("file-pin-77\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("loose-pin-88\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		p          KeyPKCS11
		want, fail string
	}{
		{KeyPKCS11{PINEnv: "PIN_SET"}, "s3cret-pin", ""},
		{KeyPKCS11{PINEnv: "PIN_UNSET"}, "", "PIN_UNSET is empty or not set"},
		{KeyPKCS11{PINFile: file}, "file-pin-77", ""},
		{KeyPKCS11{PINFile: loose}, "", "chmod 600"},
		{KeyPKCS11{PINFile: empty}, "", "is empty"},
		{KeyPKCS11{PINFile: filepath.Join(dir, "missing")}, "", "no such file"},
	} {
		pin, err := tc.p.ReadPIN(getenv)
		if tc.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%+v: %v, want %q", tc.p, err, tc.fail)
			}
			if err != nil && (strings.Contains(err.Error(), "loose-pin-88") || strings.Contains(err.Error(), "s3cret")) {
				t.Errorf("error shows a PIN: %v", err)
			}
			continue
		}
		if err != nil || pin != tc.want {
			t.Errorf("%+v: %q, %v", tc.p, pin, err)
		}
	}
}
