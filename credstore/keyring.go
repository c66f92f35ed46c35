package credstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"retropub/internal/randhex"
)

// Keyring holds the AES-256 keys from CREDSTORE_KEYS. The first one seals;
// all of them open, so a rotation can run while old records remain.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
	// raw keys in CREDSTORE_KEYS order, for DerivedKeys only.
	raw []namedKey
}

type namedKey struct {
	kid string
	key []byte
}

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseKeys reads "kid:base64key,kid2:…" (each key 32 bytes, standard or
// URL-safe base64). Errors name the key id or position, never key material.
func ParseKeys(raw string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		kid, enc, ok := strings.Cut(entry, ":")
		kid = strings.TrimSpace(kid)
		if !ok || !kidPattern.MatchString(kid) {
			return nil, fmt.Errorf("CREDSTORE_KEYS: entry %d: want kid:base64key, kid matching [A-Za-z0-9._-]{1,64}", i+1)
		}
		if _, dup := k.aeads[kid]; dup {
			return nil, fmt.Errorf("CREDSTORE_KEYS: key %q appears twice", kid)
		}
		key, err := decodeKey(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("CREDSTORE_KEYS: key %q: %v", kid, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("CREDSTORE_KEYS: key %q: %v", kid, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("CREDSTORE_KEYS: key %q: %v", kid, err)
		}
		k.aeads[kid] = aead
		k.raw = append(k.raw, namedKey{kid, key})
		if k.primary == "" {
			k.primary = kid
		}
	}
	if k.primary == "" {
		return nil, errors.New("CREDSTORE_KEYS is empty")
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("decodes to %d bytes, want 32 (AES-256)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}

// GenerateKey returns a fresh random key id and 32-byte key (standard
// base64), ready for CREDSTORE_KEYS as kid+":"+encoded.
func GenerateKey() (kid, encoded string) {
	key := make([]byte, 32)
	rand.Read(key) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "k" + randhex.String(4), base64.StdEncoding.EncodeToString(key)
}

// PrimaryID is the id of the key that seals new records.
func (k *Keyring) PrimaryID() string { return k.primary }

// DerivedKey is a key derived from one CREDSTORE_KEYS key for one purpose.
type DerivedKey struct {
	KID string // the CREDSTORE_KEYS key it comes from
	Key []byte
}

// DerivedKeys derives a 32-byte key for purpose from every key, the
// primary's first (HKDF-SHA256, RFC 5869, with purpose as its info): keys
// only the fleet holds, separate from the sealing keys, so what is made
// with them (page-ownership proofs) reveals nothing about those.
func (k *Keyring) DerivedKeys(purpose string) []DerivedKey {
	out := make([]DerivedKey, 0, len(k.raw))
	for _, nk := range k.raw {
		key, err := hkdf.Key(sha256.New, nk.key, nil, "retropub/"+purpose, 32)
		if err != nil { // only for lengths HKDF cannot produce
			panic(err)
		}
		out = append(out, DerivedKey{KID: nk.kid, Key: key})
	}
	return out
}

// sealed is the stored form of a record's secrets.
type sealed struct {
	KID   string `json:"kid"`
	Nonce []byte `json:"nonce"` // base64 in JSON
	CT    []byte `json:"ct"`
	// AD is the version of the associated data it was sealed with
	// (associatedData); absent in records sealed before versions existed.
	AD int `json:"ad,omitempty"`
}

// ErrCannotDecrypt means a record's ciphertext failed authentication: the
// key under its id is not the one that sealed it, or the record was altered
// (including its secrets being copied from another integration).
var ErrCannotDecrypt = errors.New("credstore: record cannot be decrypted (wrong key or tampered record)")

// UnknownKeyError means a record was sealed under a key id that is not in
// CREDSTORE_KEYS.
type UnknownKeyError struct {
	KeyID       string
	Integration string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("credstore: integration %q is sealed with key %q, which is not in CREDSTORE_KEYS", e.Integration, e.KeyID)
}

func (k *Keyring) seal(plaintext, aad []byte) sealed {
	aead := k.aeads[k.primary]
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return sealed{KID: k.primary, Nonce: nonce, CT: aead.Seal(nil, nonce, plaintext, aad)}
}

func (k *Keyring) open(id string, s sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[s.KID]
	if !ok {
		return nil, &UnknownKeyError{KeyID: s.KID, Integration: id}
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: integration %q, key %q", ErrCannotDecrypt, id, s.KID)
	}
	pt, err := aead.Open(nil, s.Nonce, s.CT, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: integration %q, key %q", ErrCannotDecrypt, id, s.KID)
	}
	return pt, nil
}
