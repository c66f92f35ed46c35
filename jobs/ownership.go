package jobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"

	"retropub/credstore"
)

// Page ownership (issue 13 item 4). A page is recognised as ours, when the
// mapping is lost or an earlier attempt's answer was, by its footer. The
// plain footer ("retropub report id: …") can be typed by any space editor,
// so the footer also carries a proof:
//
//	retropub proof: v1.<kid>.<base64url(HMAC-SHA256(key, integration ∥ report)[:16])>
//
// key is derived from the credstore key <kid> (credstore.DerivedKeys,
// HKDF-SHA256, purpose "page-ownership/v1"): only the fleet holds it, and
// the proof reveals nothing about the sealing keys. It binds the
// integration and the report, so a proof copied from one of our pages is
// worth nothing for any other report.
//
// A found page is adopted only under the expected parent, and then:
//
//   - with a proof made by a key we hold: only if it verifies;
//   - with a proof by a key no longer in CREDSTORE_KEYS (rotated out), or
//     with the plain footer of pages written before proofs existed: on the
//     footer alone (legacy). A planted page in an open parent is then still
//     possible: restrict the parent page. Each adopted legacy page is
//     rewritten with a proof (its body differs), so legacy pages dwindle.
//
// A proof by a key we hold that does not verify is a forgery: refused.

// ownershipPurpose names the derived key; a new scheme gets a new one.
const ownershipPurpose = "page-ownership/v1"

// proofMarker starts the proof in the footer.
const proofMarker = "retropub proof: "

var proofRE = regexp.MustCompile(`retropub proof: v1\.([A-Za-z0-9._-]{1,64})\.([A-Za-z0-9_-]{22})`)

// Ownership makes and checks page-ownership proofs. The zero value and nil
// make none and accept legacy footers only (tools and tests without keys).
type Ownership struct {
	keys []credstore.DerivedKey // the first signs; all verify
}

// NewOwnership derives the proof keys from the credstore keyring.
func NewOwnership(k *credstore.Keyring) *Ownership {
	return &Ownership{keys: k.DerivedKeys(ownershipPurpose)}
}

func proofMAC(key []byte, integration, report string) string {
	m := hmac.New(sha256.New, key)
	// Ids cannot hold NUL (idRE), so the message is unambiguous.
	m.Write([]byte(integration + "\x00" + report))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Seal adds the proof to a rendered body's footer ("" when o holds no
// key). The body hash is taken before, from the content alone.
func (o *Ownership) Seal(body, integration, report string) string {
	if o == nil || len(o.keys) == 0 {
		return body
	}
	const end = "</sub></p>\n"
	if !strings.HasSuffix(body, end) {
		return body
	}
	k := o.keys[0]
	proof := "<br/>" + proofMarker + "v1." + k.KID + "." + proofMAC(k.Key, integration, report)
	return strings.TrimSuffix(body, end) + proof + end
}

// Owns decides whether a found page is this report's: its parent must be
// the expected one, and its footer must carry a proof that verifies or,
// failing a checkable proof, this report's plain footer (legacy). why says
// what decided, for the log.
func (o *Ownership) Owns(body, parentID, integration, report, wantParent string) (ok bool, why string) {
	if wantParent != "" && parentID != wantParent {
		return false, "not under the expected parent page"
	}
	for _, m := range proofRE.FindAllStringSubmatch(body, -1) {
		key, known := o.key(m[1])
		if !known {
			continue // rotated out, or made up: no better than a plain footer
		}
		if hmac.Equal([]byte(m[2]), []byte(proofMAC(key, integration, report))) {
			return true, "ownership proof verified"
		}
		return false, "ownership proof does not verify (forged, or another report's)"
	}
	if OwnsPage(body, report) {
		return true, "legacy footer under the expected parent"
	}
	return false, "no footer of this report"
}

func (o *Ownership) key(kid string) ([]byte, bool) {
	if o == nil {
		return nil, false
	}
	for _, k := range o.keys {
		if k.KID == kid {
			return k.Key, true
		}
	}
	return nil, false
}
