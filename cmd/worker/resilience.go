package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"retropub/config"
	"retropub/gate"
	"retropub/internal/rediskeys"
	"retropub/jobs"
)

// newGate builds the process's one Confluence gate from the configuration.
func newGate(cfg *config.Config, a *app, log *zap.Logger) *gate.Gate {
	return gate.New(a.rdb, gate.Config{
		Rate:           cfg.ConfluenceRate,
		Burst:          cfg.ConfluenceBurst,
		MaxInflight:    cfg.ConfluenceMaxInflight,
		PointsPerHour:  cfg.AtlassianPointsPerHour,
		Failures:       cfg.BreakerFailures,
		OpenFor:        cfg.BreakerOpen,
		RequestTimeout: cfg.ConfluenceTimeout,
	}, log.Named("gate"))
}

func publishLimits(cfg *config.Config) jobs.Limits {
	return jobs.Limits{MaxActive: cfg.IntegrationMaxActive}
}

// readyKey is written by /readyz: a PING passes while Redis refuses
// writes (OOM, a read-only replica), a write does not.
const readyKey = rediskeys.Ready

func (a *app) redisWritable(ctx context.Context) error {
	if err := a.rdb.Set(ctx, readyKey, "1", 0).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
