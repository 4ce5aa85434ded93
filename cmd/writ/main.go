// Command writ is the identity access layer for AI agents and other
// non-human identities. See the README for the two commands that start it.
package main

import (
	"os"

	"github.com/writ-dev/writ/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
