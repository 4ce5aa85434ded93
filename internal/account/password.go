package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: RFC 9106's second recommended option (64 MiB,
// three passes, four lanes), salt 16 bytes, key 32 bytes.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLen is the shortest password an account may have.
const MinPasswordLen = 12

// MaxPasswordLen bounds a password so that hashing stays cheap to refuse.
const MaxPasswordLen = 1024

// errBadHash is returned for a stored hash that is not one this package
// wrote.
var errBadHash = errors.New("stored password hash is not a PHC argon2id string")

// Params are argon2id cost parameters. The zero value means the
// defaults above; tests use cheaper ones (a hash records its own
// parameters, so checking never depends on them).
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

func (p Params) orDefault() Params {
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return Params{Memory: argonMemory, Time: argonTime, Threads: argonThreads}
	}
	return p
}

// HashPassword returns the PHC-encoded argon2id hash of password
// ($argon2id$v=19$m=65536,t=3,p=4$SALT$KEY, unpadded base64).
func HashPassword(password string) (string, error) { return Params{}.Hash(password) }

// Hash returns the PHC-encoded argon2id hash of password with p's cost.
func (p Params) Hash(password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	p = p.orDefault()
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// unmatchable returns a PHC string with p's cost, a random salt and a
// random key: checking any password against it costs what checking a real
// hash of p's cost does, and never matches (the key is no argon2id output
// anyone knows the input of). It hashes nothing, so a server does not
// spend argon2id's memory (64 MiB by default) and a second of CPU at start
// just to have a hash for unknown names.
func (p Params) unmatchable() string {
	p = p.orDefault()
	salt := make([]byte, argonSaltLen)
	key := make([]byte, argonKeyLen)
	rand.Read(salt)
	rand.Read(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func checkPassword(password string) error {
	switch {
	case len(password) < MinPasswordLen:
		return inputErrorf("password is too short: use at least %d characters", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return inputErrorf("password is too long: use at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// phc is a parsed argon2id hash.
type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parsePHC parses a PHC argon2id string, refusing parameters that would
// make a check slow (a tampered store must not turn login into a denial
// of service).
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return phc{}, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return phc{}, errBadHash
	}
	var p phc
	var m, t, th uint64
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", m, t, th) != parts[3] {
		return phc{}, errBadHash
	}
	if m < 8 || m > 1<<20 || t < 1 || t > 16 || th < 1 || th > 16 {
		return phc{}, errBadHash
	}
	p.memory, p.time, p.threads = uint32(m), uint32(t), uint8(th)
	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return phc{}, errBadHash
	}
	if p.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return phc{}, errBadHash
	}
	return p, nil
}

// CheckPassword reports whether password matches hash, comparing in
// constant time.
func CheckPassword(hash, password string) (bool, error) {
	p, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}
