// Package redisconn builds the one go-redis client every part of a process
// shares (asynq takes it through its *FromRedisClient constructors, because
// asynq v0.26 parses redis-sentinel:// URIs wrongly).
package redisconn

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"retropub/config"
)

// New returns a client for REDIS_URL, or for Sentinel or a Redis Cluster
// when configured (config refuses both at once).
func New(c *config.Config) (redis.UniversalClient, error) {
	if len(c.RedisClusterAddrs) > 0 {
		opt := &redis.ClusterOptions{Addrs: c.RedisClusterAddrs, PoolSize: c.WorkerConcurrency + 20}
		if u, err := redis.ParseURL(c.RedisURL); err == nil {
			opt.Username, opt.Password, opt.TLSConfig = u.Username, u.Password, u.TLSConfig
		}
		return redis.NewClusterClient(opt), nil
	}
	if len(c.RedisSentinelAddrs) > 0 {
		opt := &redis.FailoverOptions{MasterName: c.RedisSentinelMaster, SentinelAddrs: c.RedisSentinelAddrs}
		if u, err := redis.ParseURL(c.RedisURL); err == nil {
			opt.Username, opt.Password, opt.DB = u.Username, u.Password, u.DB
		}
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// Enough connections for every worker goroutine plus asynq's own loops.
	if min := c.WorkerConcurrency + 20; opt.PoolSize < min {
		opt.PoolSize = min
	}
	return redis.NewClient(opt), nil
}
