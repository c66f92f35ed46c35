#!/usr/bin/env bash
# enqueue.sh: times `enqueue publish` of N JSON Lines events (default
# 100,000, two small attachments each) into real Redis; prints events/s and
# the Redis memory one queued publish takes (MEMORY USAGE of its task hash).
# Usage: test/loadharness/enqueue.sh [N] [DB]   (REDIS_URL host, DB flushed)
set -euo pipefail
n=${1:-100000}
db=${2:-8}
base=${REDIS_URL:-redis://127.0.0.1:6379/0}
url="${base%/*}/$db"
host=$(echo "$base" | sed -E 's#redis://([^:/]+).*#\1#')
port=$(echo "$base" | sed -E 's#redis://[^:/]+:?([0-9]*).*#\1#')
port=${port:-6379}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/enqueue" ./cmd/enqueue
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "{\"schema\":1,\"event_id\":\"evt-%d\",\"integration_id\":\"acme-%d\",\"report\":{\"id\":\"r%d\",\"revision\":1,\"kind\":\"retrospective\",\"title\":\"Retro %d\",\"team\":\"Platform\",\"held_at\":\"2026-11-27T15:00:00Z\",\"sections\":[{\"name\":\"Went well\",\"items\":[{\"text\":\"CI is faster\",\"votes\":4}]}],\"actions\":[{\"text\":\"Pin Go\",\"assignee\":\"Lee\",\"due\":\"2026-12-05\"}]},\"target\":{\"space_key\":\"ENG\"},\"attachments\":[{\"filename\":\"a.png\",\"content_type\":\"image/png\",\"data_base64\":\"cG5nLWE=\"},{\"filename\":\"b.png\",\"content_type\":\"image/png\",\"data_base64\":\"cG5nLWI=\"}]}\n", i, i % 10, i, i }' > "$dir/events.jsonl"
redis-cli -h "$host" -p "$port" -n "$db" flushdb >/dev/null
start=$(date +%s.%N)
REDIS_URL="$url" "$dir/enqueue" publish --file "$dir/events.jsonl" > "$dir/out.jsonl"
end=$(date +%s.%N)
queued=$(redis-cli -h "$host" -p "$port" -n "$db" llen asynq:{default}:pending)
awk -v n="$n" -v s="$start" -v e="$end" -v q="$queued" 'BEGIN { printf "enqueue publish: %d events in %.2f s = %.0f events/s (%d pending in Redis)\n", n, e - s, n / (e - s), q }'
id=$(redis-cli -h "$host" -p "$port" -n "$db" lindex asynq:{default}:pending 0)
mem=$(redis-cli -h "$host" -p "$port" -n "$db" memory usage "asynq:{default}:t:$id")
echo "Redis memory per queued publish (task hash, MEMORY USAGE): $mem bytes + its id in the pending list"
