package secrets_test

import (
	"fmt"

	"github.com/writ-dev/writ/internal/secrets"
)

func ExampleDetector_RedactJSON() {
	d, err := secrets.New(secrets.Config{FingerprintKey: []byte("a key of at least sixteen bytes")})
	if err != nil {
		panic(err)
	}
	result := []byte(`{"content":[{"type":"text","text":"DATABASE_URL=postgres://app:Zq8vR2mLx4Tp@db:5432/app"}]}`)
	out, findings, err := d.RedactJSON(result)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	for _, f := range findings {
		fmt.Println(f.RuleID, f.Severity, f.Pointer, f.Start, f.End)
	}
	// Output:
	// {"content":[{"type":"text","text":"DATABASE_URL=postgres://app:[REDACTED:uri-credentials]@db:5432/app"}]}
	// uri-credentials high /content/0/text 28 40
}
