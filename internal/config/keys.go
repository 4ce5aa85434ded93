package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Keys chooses where each of writ's keys is made and kept (see
// docs/keys.md). Each purpose names a provider: "software" (default:
// sealed under the KEK in the store), "pkcs11" (a PKCS#11 token, configured
// under pkcs11) or "tpm" (a TPM 2.0, configured under tpm).
type Keys struct {
	// X509CA is the provider of the X.509 CA keys that sign X.509-SVIDs.
	X509CA string `yaml:"x509_ca"`
	// JWT is the provider of the keys that sign JWT-SVIDs and tokens.
	JWT string `yaml:"jwt"`
	// ProxyCA is the provider of the proxy's interception CA key.
	ProxyCA string `yaml:"proxy_ca"`
	// KEK is where the key-encryption key comes from: "file" (default;
	// kek_file or WRIT_KEK), "pkcs11" (wrapped by an AES key in the token,
	// kept in DATA_DIR/kek.pkcs11) or "tpm" (sealed to the TPM, kept in
	// DATA_DIR/kek.tpm).
	KEK    string     `yaml:"kek"`
	PKCS11 *KeyPKCS11 `yaml:"pkcs11"`
	TPM    *KeyTPM    `yaml:"tpm"`
}

// KeyPKCS11 names a PKCS#11 token and where its PIN is read from. The PIN
// itself is never written in writ.yaml.
type KeyPKCS11 struct {
	// Module is the token's PKCS#11 library.
	Module string `yaml:"module"`
	// Exactly one of TokenLabel, TokenSerial and Slot selects the token.
	TokenLabel  string `yaml:"token_label"`
	TokenSerial string `yaml:"token_serial"`
	Slot        *int   `yaml:"slot"`
	// PINEnv names an environment variable holding the user PIN.
	PINEnv string `yaml:"pin_env"`
	// PINFile names a file (mode 0600 or stricter) holding the user PIN.
	PINFile string `yaml:"pin_file"`
}

// KeyTPM names a TPM 2.0: a device or a simulator over TCP.
type KeyTPM struct {
	// Device is the TPM character device, normally /dev/tpmrm0.
	Device string `yaml:"device"`
	// TCP is a TPM simulator's command address (swtpm, host:port).
	TCP string `yaml:"tcp"`
	// TCPPlatform is the simulator's platform address. Default: TCP's
	// port + 1.
	TCPPlatform string `yaml:"tcp_platform"`
}

// KEKFileFor returns the file that holds the KEK for source: the plain
// KEK file, or the device-wrapped one next to it.
func (c *Config) KEKFileFor(source string) string {
	switch source {
	case "pkcs11":
		return filepath.Join(c.DataDir, "kek.pkcs11")
	case "tpm":
		return filepath.Join(c.DataDir, "kek.tpm")
	}
	return c.KEKFile
}

func (k *Keys) defaults() {
	for _, p := range []*string{&k.X509CA, &k.JWT, &k.ProxyCA} {
		if *p == "" {
			*p = "software"
		}
	}
	if k.KEK == "" {
		k.KEK = "file"
	}
}

// validate reports problems with k through bad.
func (k *Keys) validate(bad func(key, format string, args ...any)) {
	need := map[string]string{}
	for key, v := range map[string]string{"keys.x509_ca": k.X509CA, "keys.jwt": k.JWT, "keys.proxy_ca": k.ProxyCA} {
		switch v {
		case "software":
		case "pkcs11", "tpm":
			need[v] = key
		default:
			bad(key, "%q is not a key provider; use software, pkcs11 or tpm", v)
		}
	}
	switch k.KEK {
	case "file":
	case "pkcs11", "tpm":
		need[k.KEK] = "keys.kek"
	default:
		bad("keys.kek", "%q is not a key-encryption key source; use file, pkcs11 or tpm", k.KEK)
	}
	if key, ok := need["pkcs11"]; ok && k.PKCS11 == nil {
		bad(key, "uses pkcs11 but keys.pkcs11 is not configured (module, token_label and pin_env or pin_file)")
	}
	if key, ok := need["tpm"]; ok && k.TPM == nil {
		bad(key, "uses tpm but keys.tpm is not configured (device or tcp)")
	}
	if p := k.PKCS11; p != nil {
		if p.Module == "" {
			bad("keys.pkcs11.module", "not set; name the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
		}
		n := 0
		for _, set := range []bool{p.TokenLabel != "", p.TokenSerial != "", p.Slot != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad("keys.pkcs11", "set exactly one of token_label, token_serial and slot (%d are set)", n)
		}
		if (p.PINEnv == "") == (p.PINFile == "") {
			bad("keys.pkcs11", "set exactly one of pin_env and pin_file (the PIN itself never goes in writ.yaml)")
		}
		if p.Slot != nil && *p.Slot < 0 {
			bad("keys.pkcs11.slot", "%d is negative", *p.Slot)
		}
	}
	if t := k.TPM; t != nil {
		if (t.Device == "") == (t.TCP == "") {
			bad("keys.tpm", "set exactly one of device (e.g. /dev/tpmrm0) and tcp (a simulator, e.g. 127.0.0.1:2321)")
		}
		for key, addr := range map[string]string{"keys.tpm.tcp": t.TCP, "keys.tpm.tcp_platform": t.TCPPlatform} {
			if addr == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				bad(key, "%q is not host:port: %v", addr, err)
			}
		}
	}
}

// ReadPIN returns the PKCS#11 PIN from the environment variable or file
// named in p. Errors name where the PIN was looked for, never the PIN.
func (p *KeyPKCS11) ReadPIN(getenv func(string) string) (string, error) {
	if p.PINEnv != "" {
		v := getenv(p.PINEnv)
		if v == "" {
			return "", fmt.Errorf("keys.pkcs11.pin_env: the environment variable %s is empty or not set; export the token's user PIN in it", p.PINEnv)
		}
		return v, nil
	}
	fi, err := os.Stat(p.PINFile)
	if err != nil {
		return "", fmt.Errorf("keys.pkcs11.pin_file: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("keys.pkcs11.pin_file: %s has mode %v; restrict it with: chmod 600 %s", p.PINFile, fi.Mode().Perm(), p.PINFile)
	}
	b, err := os.ReadFile(p.PINFile)
	if err != nil {
		return "", fmt.Errorf("keys.pkcs11.pin_file: %v", err)
	}
	pin := string(b)
	for len(pin) > 0 && (pin[len(pin)-1] == '\n' || pin[len(pin)-1] == '\r') {
		pin = pin[:len(pin)-1]
	}
	if pin == "" {
		return "", fmt.Errorf("keys.pkcs11.pin_file: %s is empty", p.PINFile)
	}
	return pin, nil
}
