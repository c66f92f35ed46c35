#!/usr/bin/env bash
# The README's "First publish" section, step by step: build, a private
# Redis, a key, the local fake Confluence, the integration, a worker, the
# sample event, the page tree. scripts/first_publish_test.go runs it.
#
#   scripts/first-publish.sh
#
# REDIS_PORT (default 6390) and HTTP_ADDR (default 127.0.0.1:8080) move
# what it listens on. It stops everything it started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT="${REDIS_PORT:-6390}"
export HTTP_ADDR="${HTTP_ADDR:-127.0.0.1:8080}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== 1. build the binaries (bin/worker, bin/enqueue)"
make build

echo "== 2. a Redis of your own"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== 3. a credential store key"
export CREDSTORE_KEYS="k1:$(head -c 32 /dev/urandom | base64)"

echo "== 4. the local fake Confluence"
go build -o bin/localconfluence ./test/localconfluence
bin/localconfluence -integration-file "$work/local-dc.json" >"$work/fake.log" 2>&1 &
fake=$!
pids+=($fake)
for _ in $(seq 1 100); do [ -s "$work/local-dc.json" ] && break; sleep 0.1; done
cat "$work/fake.log"

echo "== 5. store the integration"
bin/worker integrations put --file "$work/local-dc.json"
bin/worker integrations list

echo "== 6. a worker (the fake is on loopback: CONFLUENCE_ALLOW_CIDRS lets it through)"
CONFLUENCE_ALLOW_CIDRS=127.0.0.1/32 LOG_FORMAT=console bin/worker >"$work/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== 7. publish the sample event and wait for it"
if ! bin/enqueue publish --file docs/sample-event.json --wait=60s; then
  echo "publish failed; the worker's log:" >&2
  cat "$work/worker.log" >&2
  exit 1
fi

echo "== 8. the page in the fake Confluence"
kill -INT "$fake"
wait "$fake" || true
sed -n '/page tree/,$p' "$work/fake.log"
