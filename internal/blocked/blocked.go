// Package blocked keeps, per integration, the Confluence spaces an app
// access rule blocks retropub from (DESIGN §10: the integration's status
// names its blocked spaces). A publish refused there marks the space; a
// later successful publish there clears it. The status surface reads it
// with Spaces.
package blocked

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
)

// Key is the hash of an integration's blocked spaces: field = space key,
// value = a Space as JSON. Tagged with the integration id (one slot).
func Key(integration string) string { return rediskeys.ForIntegration("blocked", integration) }

// Space is one blocked space of an integration.
type Space struct {
	Key     string    `json:"space_key"`
	Since   time.Time `json:"since"`
	Message string    `json:"message"` // what a person should do
}

// Mark records that space is blocked. An existing mark keeps its Since.
func Mark(ctx context.Context, rdb redis.UniversalClient, integration, space, message string, now time.Time) error {
	v, _ := json.Marshal(Space{Key: space, Since: now.UTC(), Message: message})
	if _, err := rdb.HSetNX(ctx, Key(integration), space, v).Result(); err != nil {
		return fmt.Errorf("mark space %s of integration %s blocked: %w", space, integration, err)
	}
	return nil
}

// Clear forgets a blocked space (a publish there succeeded).
func Clear(ctx context.Context, rdb redis.UniversalClient, integration, space string) error {
	return clearResult(rdb.HDel(ctx, Key(integration), space), integration, space)
}

// ClearIn queues Clear in pipe, so it can share a round trip; the returned
// func gives Clear's result once pipe has run.
func ClearIn(ctx context.Context, pipe redis.Pipeliner, integration, space string) func() error {
	cmd := pipe.HDel(ctx, Key(integration), space)
	return func() error { return clearResult(cmd, integration, space) }
}

func clearResult(cmd *redis.IntCmd, integration, space string) error {
	if err := cmd.Err(); err != nil {
		return fmt.Errorf("clear blocked space %s of integration %s: %w", space, integration, err)
	}
	return nil
}

// Spaces lists an integration's blocked spaces, sorted by key.
func Spaces(ctx context.Context, rdb redis.UniversalClient, integration string) ([]Space, error) {
	h, err := rdb.HGetAll(ctx, Key(integration)).Result()
	if err != nil {
		return nil, fmt.Errorf("read blocked spaces of integration %s: %w", integration, err)
	}
	out := make([]Space, 0, len(h))
	for k, v := range h {
		s := Space{Key: k}
		_ = json.Unmarshal([]byte(v), &s) // a damaged value still names its space
		s.Key = k
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Space) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
