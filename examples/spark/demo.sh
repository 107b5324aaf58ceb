#!/usr/bin/env bash
# `npm run spark:example`: the whole loop on this machine, on loopback only.
#   1. a single-node Kafka (scripts/kafka-dev.sh) on 127.0.0.1:${DEMO_KAFKA_PORT:-19092}
#   2. the agent on its simulator (examples/spark/agent.demo.yaml) syncing to it
#   3. the reference pipeline (local[2], 1 s trigger) into ./data/spark-demo/sink.db
# and prints what the sink counted every 10 s. Ctrl-C stops all three. Extra arguments go to the
# pipeline (pipeline.py --help).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${root}"
port="${DEMO_KAFKA_PORT:-19092}"
dir="./data/spark-demo"
mkdir -p "${dir}"
export DEMO_KAFKA="127.0.0.1:${port}"

examples/spark/setup.sh >/dev/null
scripts/kafka-dev.sh start --port "${port}" --controller-port "$((port + 1))" --dir "${dir}/kafka" --partitions 3 --daemon
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/kafka-dev.sh stop --dir "${dir}/kafka" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

npx tsx agent/cli.ts run --config examples/spark/agent.demo.yaml >"${dir}/agent.log" 2>&1 &
pids+=($!)
examples/spark/run.sh --brokers "${DEMO_KAFKA}" --prefix edge. --checkpoint "${dir}/checkpoint" \
  --sink "${dir}/sink.db" "$@" >"${dir}/pipeline.log" 2>&1 &
pids+=($!)
echo "agent log ${dir}/agent.log, pipeline log ${dir}/pipeline.log, sink ${dir}/sink.db (Ctrl-C stops)"
python3 - "${dir}/sink.db" <<'PY'
import os, sqlite3, sys, time
path = sys.argv[1]
while True:
    time.sleep(10)
    if not os.path.exists(path):
        print("waiting for the pipeline to start ...", flush=True)
        continue
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        kinds = db.execute("SELECT kind, SUM(events), SUM(late) FROM event_windows GROUP BY kind ORDER BY kind").fetchall()
        lat = db.execute("SELECT latency_p50_ms, latency_max_ms FROM batches WHERE query='events' AND latency_p50_ms IS NOT NULL ORDER BY batch_id DESC LIMIT 1").fetchone()
        twins = db.execute("SELECT gateway_id || '/' || asset || ' ' || state || ' health ' || health FROM twin").fetchall()
    except sqlite3.Error:
        continue
    finally:
        db.close()
    print(time.strftime("%H:%M:%S"), "counted:", ", ".join(f"{k} {n} ({l} late)" for k, n, l in kinds) or "nothing yet",
          f"| last batch latency p50 {lat[0]} ms, max {lat[1]} ms" if lat else "", "| twin:", "; ".join(t[0] for t in twins), flush=True)
PY
