// Package randhex makes random hex strings (tokens, ids, lock owners) from
// crypto/rand: the one helper for them, so every caller gets the same
// source and the same length rule.
package randhex

import (
	"crypto/rand"
	"encoding/hex"
)

// String returns n random bytes as 2n lowercase hex digits. crypto/rand
// never fails since Go 1.24, so neither does String.
func String(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
