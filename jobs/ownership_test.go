package jobs

import (
	"strings"
	"testing"

	"retropub/credstore"
)

func testKeyring(t *testing.T, n int) (*credstore.Keyring, []string) {
	t.Helper()
	var entries []string
	for range n {
		kid, key := credstore.GenerateKey()
		entries = append(entries, kid+":"+key)
	}
	k, err := credstore.ParseKeys(strings.Join(entries, ","))
	if err != nil {
		t.Fatal(err)
	}
	return k, entries
}

func TestOwnershipProof(t *testing.T) {
	k, entries := testKeyring(t, 2)
	o := NewOwnership(k)
	p := &PublishPayload{IntegrationID: "acme", Report: Report{ID: "r1", Kind: KindRetrospective, Title: "T"}}
	plain := RenderPage(p)
	sealed := o.Seal(plain, "acme", "r1")
	if sealed == plain || !strings.Contains(sealed, proofMarker+"v1."+k.PrimaryID()+".") {
		t.Fatalf("no proof in %q", sealed[strings.LastIndex(sealed, "<hr/>"):])
	}
	if !OwnsPage(sealed, "r1") {
		t.Fatal("a sealed footer no longer carries the plain one")
	}
	forged := strings.Replace(sealed, proofMAC(NewOwnership(k).keys[0].Key, "acme", "r1"), "AAAAAAAAAAAAAAAAAAAAAA", 1)
	for _, c := range []struct {
		name                           string
		o                              *Ownership
		body, parent, integ, rep, want string
		ok                             bool
	}{
		{"verified", o, sealed, "P", "acme", "r1", "P", true},
		{"wrong parent", o, sealed, "Q", "acme", "r1", "P", false},
		{"another integration's proof", o, sealed, "P", "evil", "r1", "P", false},
		{"forged", o, forged, "P", "acme", "r1", "P", false},
		{"legacy under the parent", o, plain, "P", "acme", "r1", "P", true},
		{"legacy elsewhere", o, plain, "Q", "acme", "r1", "P", false},
		{"another report", o, plain, "P", "acme", "r2", "P", false},
		// The signing key rotated out of CREDSTORE_KEYS: the footer decides.
		{"unknown key", rotatedOut(t), sealed, "P", "acme", "r1", "P", true},
		// After a rotation that keeps the old key, its proofs still verify.
		{"old key kept", keep(t, entries), sealed, "P", "acme", "r1", "P", true},
		{"nil ownership", nil, plain, "P", "acme", "r1", "P", true},
	} {
		if ok, why := c.o.Owns(c.body, c.parent, c.integ, c.rep, c.want); ok != c.ok {
			t.Errorf("%s: %v (%s), want %v", c.name, ok, why, c.ok)
		}
	}
}

// rotatedOut is an Ownership whose keyring no longer has the signing key.
func rotatedOut(t *testing.T) *Ownership {
	k, _ := testKeyring(t, 1)
	return NewOwnership(k)
}

// keep is an Ownership after a rotation: a new primary, the old keys kept.
func keep(t *testing.T, entries []string) *Ownership {
	kid, key := credstore.GenerateKey()
	k, err := credstore.ParseKeys(strings.Join(append([]string{kid + ":" + key}, entries...), ","))
	if err != nil {
		t.Fatal(err)
	}
	return NewOwnership(k)
}
