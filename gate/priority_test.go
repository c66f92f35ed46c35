package gate

import (
	"context"
	"testing"

	"retropub/confluence"
)

// The share of the points budget follows the priority the task put in the
// context, not any queue name: critical spends all, normal keeps 5 %, low
// stops at 80 %.
func TestBudgetShareFollowsPriority(t *testing.T) {
	for p, want := range map[confluence.Priority]int{
		confluence.PriorityCritical: 100, confluence.PriorityNormal: 95, confluence.PriorityLow: 80,
	} {
		g := New(newRedis(t), Config{PointsPerHour: 100}, nil)
		ctx := confluence.WithPriority(context.Background(), p)
		n := 0
		for ; n < 200; n++ {
			done, err := g.Admit(ctx, inst, "POST", "POST /wiki/api/v2/pages")
			if err != nil {
				deferral(t, err, RefusedBudget)
				break
			}
			done(confluence.Outcome{})
		}
		if n != want {
			t.Errorf("priority %d spent %d points, want %d", p, n, want)
		}
	}
}
