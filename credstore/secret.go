package credstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret is a credential value that will not print itself. Every formatting
// path (fmt, encoding/json, encoding.TextMarshaler, slog, and zap through
// those) yields "[REDACTED]"; only Reveal returns the value. asynq stores
// err.Error() in Redis and the dashboard shows it, so a printable secret
// would leak into places we cannot clean up.
type Secret string

// Reveal returns the secret value. Call it only where the value is sent to
// the remote system (an Authorization header, a signer).
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return `credstore.Secret("` + redacted + `")` }

// Format covers every verb, including %x and %q, which would otherwise
// bypass String for some types.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, redacted)
}

func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// UnmarshalJSON reads a plain JSON string, so a record file can carry its
// secrets. The error never echoes the input.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return errors.New("a secret must be a JSON string")
	}
	*s = Secret(v)
	return nil
}
