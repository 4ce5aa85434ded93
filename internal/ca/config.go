package ca

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// Defaults for the zero values of [Config].
const (
	DefaultCATTL       = 24 * time.Hour
	DefaultX509SVIDTTL = time.Hour
	DefaultJWTSVIDTTL  = 5 * time.Minute
	DefaultJWTKeyTTL   = 24 * time.Hour

	// MinKeyTTL is the shortest CA or JWT key life accepted.
	MinKeyTTL = time.Minute

	// maxRefreshHint bounds the default bundle refresh hint.
	maxRefreshHint = 5 * time.Minute
	// backdate is how far NotBefore is set in the past to absorb clock
	// skew between writ and the verifiers.
	backdate = 10 * time.Second
)

// Config configures an [Authority]. TrustDomain, Keys, Resources and
// Sealer or Providers are required; every other field has a documented
// default.
type Config struct {
	// TrustDomain is the trust domain the authority signs for.
	TrustDomain spiffeid.TrustDomain
	// Keys stores the signing keys (sealed).
	Keys store.Keys
	// Resources stores the "TrustBundle" document whose version is the
	// bundle sequence number.
	Resources store.Resources
	// Sealer seals private keys before they reach Keys, when Providers
	// is not set.
	Sealer *keys.Sealer
	// Providers make the keys: software keys sealed by Sealer, or keys in
	// a PKCS#11 token or TPM (keys.x509_ca, keys.jwt in writ.yaml).
	// Default: software keys sealed by Sealer.
	Providers *keys.Set
	// Emitter receives key.* audit events. Defaults to logging them to Log.
	Emitter audit.Emitter
	// Log receives operational messages. Defaults to discarding them.
	Log *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time

	// CATTL is the life of each X.509 CA key (default 24h; at least 1m).
	CATTL time.Duration
	// X509SVIDTTL is the default X.509-SVID lifetime (default 1h).
	X509SVIDTTL time.Duration
	// JWTSVIDTTL is the default JWT-SVID lifetime (default 5m).
	JWTSVIDTTL time.Duration
	// JWTKeyTTL is the life of each JWT signing key (default 24h; at least 1m).
	JWTKeyTTL time.Duration
	// RefreshHint is the bundle refresh hint: how often verifiers should
	// fetch the bundle. A prepared key is published at least this long
	// before it signs. Default: the smaller of 5m and a sixth of the
	// shorter key life.
	RefreshHint time.Duration

	// Leases, when set, elect one rotation owner among the servers that
	// share Keys (several servers on one PostgreSQL store): every
	// reconciliation, the only code that writes keys, runs while holding
	// the lease RotationLease as LeaseHolder, so that two servers never
	// prepare or activate keys at the same time; the next one to hold it
	// finds the transition made. Nil for a store of one process.
	Leases store.Leases
	// LeaseHolder names this server in Leases. Required with Leases.
	LeaseHolder string

	// UpstreamCertFile and UpstreamKeyFile name PEM files with an upstream
	// CA certificate (optionally followed by its chain up to the root) and
	// its private key. When set, writ's CA keys are intermediates signed by
	// the upstream key and the bundle's X.509 authority is the upstream
	// root. Both or neither must be set.
	UpstreamCertFile string
	UpstreamKeyFile  string
}

// withDefaults validates c and returns a copy with every default filled in.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.TrustDomain.IsZero() {
		errs = append(errs, errors.New("trust domain is not set"))
	}
	if c.Leases != nil && c.LeaseHolder == "" {
		errs = append(errs, errors.New("lease holder is not set (required with Leases)"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("key store is not set"))
	}
	if c.Resources == nil {
		errs = append(errs, errors.New("resource store is not set"))
	}
	if c.Providers == nil && c.Sealer != nil {
		c.Providers = keys.NewSoftwareSet(c.Sealer)
	}
	if c.Providers == nil {
		errs = append(errs, errors.New("neither key providers nor a sealer is set"))
	}
	if (c.UpstreamCertFile == "") != (c.UpstreamKeyFile == "") {
		errs = append(errs, fmt.Errorf("upstream CA needs both a certificate file and a key file (cert %q, key %q)", c.UpstreamCertFile, c.UpstreamKeyFile))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"CA TTL", &c.CATTL, DefaultCATTL, MinKeyTTL},
		{"JWT key TTL", &c.JWTKeyTTL, DefaultJWTKeyTTL, MinKeyTTL},
		{"X.509-SVID TTL", &c.X509SVIDTTL, DefaultX509SVIDTTL, time.Second},
		{"JWT-SVID TTL", &c.JWTSVIDTTL, DefaultJWTSVIDTTL, time.Second},
		{"bundle refresh hint", &c.RefreshHint, 0, time.Second},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < d.min:
			errs = append(errs, fmt.Errorf("%s is %v; set it to at least %v (or 0 for the default)", d.name, *d.v, d.min))
		}
	}
	if c.RefreshHint == 0 {
		c.RefreshHint = min(maxRefreshHint, min(c.CATTL, c.JWTKeyTTL)/6)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Emitter == nil {
		c.Emitter = audit.SlogEmitter{Log: c.Log}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("configure CA: %w", err)
	}
	return c, nil
}
