// Package scan finds static secrets in files and in git history with the one
// secret detector, [github.com/writ-dev/writ/internal/secrets]. It is what
// `writ scan` runs.
//
// [Scanner.Dir] walks a directory: it skips .git, symbolic links (none is
// followed, so nothing outside the root is read), binary files (a NUL byte
// in the first 8000 bytes, as git decides) and files larger than
// [Config.MaxFileSize], and paths that the detector's global allowlist
// names (lockfiles, vendored trees, images: [secrets.Detector.PathAllowed]).
// Files are scanned in parallel by a bounded pool of workers.
//
// Each file gets a [Kind] from its path: CI definitions (GitHub Actions,
// GitLab CI, Jenkinsfile, CircleCI), Dockerfiles, Compose files, Kubernetes
// manifests, Helm values, .env files and MCP client configurations. The
// detector runs on every kind's bytes; a Kubernetes Secret manifest's
// base64 data values are also decoded and scanned, each as "key=value" so
// that rules which need the key's name (a password assignment) apply, and
// their findings point at the key's line in the manifest.
//
// [Scanner.Git] scans every commit of every branch and tag of a repository
// through the git command line: one `git log --all --raw` lists which blob
// each commit wrote at which path, each distinct blob is read once through
// `git cat-file --batch` and scanned, and each distinct secret (rule and
// fingerprint) is reported once, at the first commit that wrote it, with
// the last commit that wrote it, how many paths and blobs held it, and
// whether HEAD's tree still holds it.
//
// A [Finding] never holds a secret's value: it carries the value's keyed
// fingerprint (HMAC-SHA256 under [Config.FingerprintKey]). Findings are
// dropped when their line carries an inline "writ:allow" (or
// "gitleaks:allow") comment or an [Ignore] list (.writscanignore) names
// their path, rule or fingerprint; a [Baseline] marks the findings that an
// earlier scan already reported.
//
// Live validation (`writ scan --validate`, off unless asked for) is a
// [Validator]: [Config.Secret] hands it each kept finding's value during
// the scan, and [Validator.Validate] sends each distinct secret once to
// its provider's read-only identity call (GitHub, Slack, OpenAI,
// Anthropic, Stripe) and sets the findings' [Validation] (valid, invalid
// or unknown, with a reason that never holds the value), which the blast
// radius score uses.
package scan
