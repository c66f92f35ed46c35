package outcomes

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"retropub/credstore"
)

// Sealer keeps parked payloads sealed in Redis: a payload may carry
// signed attachment URLs, credentials in all but name. AES-256-GCM under
// a key derived from CREDSTORE_KEYS for this purpose only, bound to the
// (integration, report) it belongs to.
type Sealer struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// sealPurpose separates these keys from every other use of CREDSTORE_KEYS.
const sealPurpose = "parked-payload"

// NewSealer derives the sealing keys from the fleet's keyring.
func NewSealer(keys *credstore.Keyring) (*Sealer, error) {
	s := &Sealer{aeads: map[string]cipher.AEAD{}}
	for i, k := range keys.DerivedKeys(sealPurpose) {
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			s.primary = k.KID
		}
		s.aeads[k.KID] = aead
	}
	if s.primary == "" {
		return nil, errors.New("outcomes: no key to seal parked payloads with (CREDSTORE_KEYS)")
	}
	return s, nil
}

func sealAD(integration, report string) []byte {
	return []byte("retropub/parked/v1\x00" + integration + "\x00" + report)
}

// seal returns "v1:<kid>:<base64 nonce‖ciphertext>".
func (s *Sealer) seal(integration, report string, payload []byte) []byte {
	aead := s.aeads[s.primary]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	ct := aead.Seal(nonce, nonce, payload, sealAD(integration, report))
	return []byte("v1:" + s.primary + ":" + base64.StdEncoding.EncodeToString(ct))
}

// ErrSealed means a parked payload cannot be opened: sealed with a key no
// longer in CREDSTORE_KEYS, or altered.
var ErrSealed = errors.New("parked payload cannot be opened (key not in CREDSTORE_KEYS, or altered)")

func (s *Sealer) open(integration, report string, stored []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(stored), "v1:")
	if !ok {
		return nil, fmt.Errorf("parked report %s/%s: %w", integration, report, ErrSealed)
	}
	kid, b64, _ := strings.Cut(rest, ":")
	aead, ok := s.aeads[kid]
	ct, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(ct) < aead.NonceSize() {
		return nil, fmt.Errorf("parked report %s/%s (key %q): %w", integration, report, kid, ErrSealed)
	}
	pt, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], sealAD(integration, report))
	if err != nil {
		return nil, fmt.Errorf("parked report %s/%s (key %q): %w", integration, report, kid, ErrSealed)
	}
	return pt, nil
}
