package keys

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KEK sources, as written in writ.yaml (keys.kek).
const (
	KEKFromFile   = "file"
	KEKFromPKCS11 = KindPKCS11
	KEKFromTPM    = KindTPM
)

// kekWrapper is a device that can wrap the KEK so that only it can
// unwrap it again.
type kekWrapper interface {
	WrapKEK(kek []byte) ([]byte, error)
	UnwrapKEK(blob []byte) ([]byte, error)
}

// LoadDeviceKEK returns the KEK kept wrapped by a device (a PKCS#11 token's
// AES key, or sealed to a TPM) in wrappedFile. On first start it makes
// one: from the plain KEK in plainFile if that exists (so an existing data
// directory keeps its sealed secrets; delete plainFile afterwards), else a
// new random key. It reports whether it wrapped a plain KEK.
func LoadDeviceKEK(dev kekWrapper, wrappedFile, plainFile string) (kek []byte, migrated bool, err error) {
	if fi, err := os.Stat(wrappedFile); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("wrapped key-encryption key file %s has mode %v; restrict it with: chmod 600 %s", wrappedFile, fi.Mode().Perm(), wrappedFile)
		}
		b, err := os.ReadFile(wrappedFile)
		if err != nil {
			return nil, false, fmt.Errorf("read wrapped key-encryption key: %w", err)
		}
		blob, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, false, fmt.Errorf("wrapped key-encryption key file %s is not base64", wrappedFile)
		}
		kek, err := dev.UnwrapKEK(blob)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", wrappedFile, err)
		}
		return kek, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("stat wrapped key-encryption key: %w", err)
	}
	if _, err := os.Stat(plainFile); err == nil {
		if kek, err = LoadKEK("", plainFile); err != nil {
			return nil, false, err
		}
		migrated = true
	} else {
		kek = make([]byte, KEKSize)
		rand.Read(kek)
	}
	blob, err := dev.WrapKEK(kek)
	if err != nil {
		return nil, false, err
	}
	if err := writeNew(wrappedFile, base64.StdEncoding.EncodeToString(blob)+"\n"); err != nil {
		return nil, false, fmt.Errorf("write wrapped key-encryption key: %w", err)
	}
	// Check the round trip before anything is sealed under the new KEK.
	back, err := dev.UnwrapKEK(blob)
	if err != nil || string(back) != string(kek) {
		os.Remove(wrappedFile)
		return nil, false, fmt.Errorf("check the wrapped key-encryption key: %v", errOr(err, "unwrapped key differs"))
	}
	return kek, migrated, nil
}

// writeNew creates file (0600, which must not exist) with content, synced.
func writeNew(file, content string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
