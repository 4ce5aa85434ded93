// Package archtest holds no code: its test checks that writ's packages keep
// the layers docs/architecture.md describes (who may import whom), so that
// the map of the code stays true as the code grows.
package archtest
