package secrets

// PathAllowed reports whether a file at path (slash-separated, relative to
// the scanned root) is not to be scanned, by the global allowlists' paths:
// gitleaks' list of lockfiles (package-lock.json, yarn.lock, go.sum, …),
// vendored dependency trees (node_modules, vendor/…), images, fonts and
// office documents. [Detector.Find] sees bytes and never applies it; a
// scanner of files calls it before reading a file.
func (d *Detector) PathAllowed(path string) bool {
	for i := range d.global {
		for _, re := range d.global[i].paths {
			if re.MatchString(path) {
				return true
			}
		}
	}
	return false
}
