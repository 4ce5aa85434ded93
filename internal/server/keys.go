package server

import (
	"fmt"
	"os"

	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/keys"
)

// openKeys opens the key devices named in writ.yaml (keys.pkcs11,
// keys.tpm), loads the key-encryption key from its source and returns the
// provider set that makes each purpose's keys, and the KEK. envKEK is the
// WRIT_KEK value, which only the file source reads.
func (s *Server) openKeys(cfg config.Config, envKEK string) (*keys.Set, []byte, error) {
	set := &keys.Set{Use: map[keys.Purpose]string{
		keys.PurposeX509CA:  cfg.Keys.X509CA,
		keys.PurposeJWT:     cfg.Keys.JWT,
		keys.PurposeProxyCA: cfg.Keys.ProxyCA,
	}}
	fail := func(err error) (*keys.Set, []byte, error) {
		set.Close()
		return nil, nil, err
	}
	if p := cfg.Keys.PKCS11; p != nil {
		pin, err := p.ReadPIN(os.Getenv)
		if err != nil {
			return fail(err)
		}
		if set.PKCS11, err = keys.OpenPKCS11(keys.PKCS11Config{Module: p.Module, TokenLabel: p.TokenLabel, TokenSerial: p.TokenSerial, Slot: p.Slot, PIN: pin}); err != nil {
			return fail(err)
		}
	}
	if t := cfg.Keys.TPM; t != nil {
		var err error
		if set.TPM, err = keys.OpenTPM(keys.TPMConfig{Device: t.Device, TCP: t.TCP, TCPPlatform: t.TCPPlatform}); err != nil {
			return fail(err)
		}
	}
	var (
		kek      []byte
		migrated bool
		err      error
	)
	switch cfg.Keys.KEK {
	case keys.KEKFromPKCS11:
		if envKEK != "" {
			return fail(fmt.Errorf("keys.kek is pkcs11 but %s is set; unset it (the token holds the key-encryption key)", keys.KEKEnv))
		}
		kek, migrated, err = keys.LoadDeviceKEK(set.PKCS11, cfg.KEKFileFor(cfg.Keys.KEK), cfg.KEKFile)
	case keys.KEKFromTPM:
		if envKEK != "" {
			return fail(fmt.Errorf("keys.kek is tpm but %s is set; unset it (the TPM holds the key-encryption key)", keys.KEKEnv))
		}
		kek, migrated, err = keys.LoadDeviceKEK(set.TPM, cfg.KEKFileFor(cfg.Keys.KEK), cfg.KEKFile)
	default:
		kek, err = keys.LoadKEK(envKEK, cfg.KEKFile)
	}
	if err != nil {
		return fail(err)
	}
	if migrated {
		s.log.Warn("the key-encryption key file was wrapped by the device; delete the plain file now that writ no longer needs it",
			"plain_file", cfg.KEKFile, "wrapped_file", cfg.KEKFileFor(cfg.Keys.KEK))
	}
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		return fail(err)
	}
	set.Software = keys.Software{Sealer: sealer}
	for _, p := range []keys.Purpose{keys.PurposeX509CA, keys.PurposeJWT, keys.PurposeProxyCA} {
		s.log.Info("key provider", "purpose", string(p), "provider", set.Describe(p))
	}
	return set, kek, nil
}
