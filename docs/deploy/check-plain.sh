#!/usr/bin/env bash
# The plain-process deployment of docs/DEPLOY.md, run for real: a two-node Ray cluster on
# this one machine (a head and a second node, each on its own ports and temp dir), the
# store on PostgreSQL, kodosumi's spooler and the panel on the head, the timer as a Ray
# actor placed on the second node. Then: status and metrics, a schedule fired, the store
# backed up (pg_dump, and SQLite's .backup), and the drill: the second node lost (its
# processes killed by pid), the timer started again on the head by the starter loop of
# docs/DEPLOY.md, the next slot fired.
#
#   KODO_TIMER_DATABASE=postgresql+asyncpg://kodo_timer:kodo_timer@127.0.0.1:5432/kodo_x \
#       bash docs/deploy/check-plain.sh
#
# Every process it starts runs in a session of its own and is stopped by that session's
# pids on exit. Never `ray stop`: it would stop every Ray on the machine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="${BIN:-$ROOT/.venv/bin}:$PATH"
: "${KODO_TIMER_DATABASE:?set KODO_TIMER_DATABASE=postgresql+asyncpg://user:pw@host/db}"
WORK=$(mktemp -d /tmp/ktd-XXXX)       # short: Ray's socket paths live under it
DATA=$WORK/data; mkdir -p "$DATA/logs"
SESSIONS=()

# Ports: one free block below the kernel's ephemeral range (ray's defaults would clash
# with a second node on the same machine, and with other Rays here).
BASE=$(python -c 'from kodosumi_timer.devstack import free_port_range; print(free_port_range(600)[0])')
GCS=$BASE DASH=$((BASE+1)) SERVE=$((BASE+2)) PANEL=$((BASE+3))
head_ports() { echo --ray-client-server-port=$((BASE+4)) --node-manager-port=$((BASE+5)) \
  --object-manager-port=$((BASE+6)) --dashboard-agent-listen-port=$((BASE+7)) \
  --dashboard-agent-grpc-port=$((BASE+8)) --metrics-export-port=$((BASE+9)) \
  --runtime-env-agent-port=$((BASE+10)) --min-worker-port=$((BASE+100)) --max-worker-port=$((BASE+299)); }
node_ports() { echo --node-manager-port=$((BASE+20)) --object-manager-port=$((BASE+21)) \
  --dashboard-agent-listen-port=$((BASE+22)) --dashboard-agent-grpc-port=$((BASE+23)) \
  --metrics-export-port=$((BASE+24)) --runtime-env-agent-port=$((BASE+25)) \
  --min-worker-port=$((BASE+300)) --max-worker-port=$((BASE+499)); }

# The settings every process shares (docs/DEPLOY.md, "Settings").
export KODO_SECRET_KEY=${KODO_SECRET_KEY:-$(python -c 'import secrets; print(secrets.token_hex(32))')}
export KODO_RAY_SERVER=127.0.0.1:$GCS RAY_ADDRESS=127.0.0.1:$GCS
export KODO_RAY_DASHBOARD=http://127.0.0.1:$DASH
export KODO_ADMIN_DATABASE=sqlite+aiosqlite:///$DATA/admin.db
export KODO_EXEC_DIR=$DATA/execution KODO_UPLOAD_DIR=$DATA/uploads
export KODO_SPOOLER_LOG_FILE=$DATA/spooler.log KODO_APP_LOG_FILE=$DATA/app.log
export KODO_YAML_BASE=$DATA/config/config.yaml
export KODO_APP_SERVER=http://127.0.0.1:$PANEL KODO_TIMER_PANEL_URL=http://127.0.0.1:$PANEL
export KODO_TIMER_LOG_FILE=$DATA/logs/timer.log KODO_TIMER_SCHEDULES=$DATA/config/schedules.yaml
export RAY_USAGE_STATS_ENABLED=0 RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
# start a long-running command in a session of its own; remember the session's id
bg() { local name=$1; shift; printf '$ %s &\n' "$*"
  setsid "$@" >"$DATA/logs/$name.log" 2>&1 < /dev/null & SESSIONS+=("$name:$!"); }
session_pids() { ps -eo pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'; }
kill_session() {  # every process of one session we started, by pid
  local sid=$1 sig=$2 pids; pids=$(session_pids "$sid")
  [ -n "$pids" ] && kill "-$sig" $pids 2>/dev/null || true; }
cleanup() {
  say "stopping what this script started (by pid)"
  for ((i=${#SESSIONS[@]}-1; i>=0; i--)); do kill_session "${SESSIONS[i]#*:}" TERM; done
  for _ in $(seq 30); do
    left=0; for s in "${SESSIONS[@]}"; do [ -n "$(session_pids "${s#*:}")" ] && left=1; done
    [ $left = 0 ] && break; sleep 1
  done
  for s in "${SESSIONS[@]}"; do kill_session "${s#*:}" KILL; done
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll with a deadline
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { echo "FAILED: $what not within the deadline" >&2; exit 1; }
    sleep 1
  done; echo "ok: $what"; }
session_of() { for s in "${SESSIONS[@]}"; do [ "${s%%:*}" = "$1" ] && echo "${s#*:}"; done; }

say "1. the store: migrations (also on every upgrade, before the new version starts)"
run koco-timer db upgrade

say "2. Ray head (runs kodosumi's spooler, Serve's proxy and the panel's node)"
bg ray-head ray start --head --block --disable-usage-stats --port=$GCS \
  --dashboard-host=127.0.0.1 --dashboard-port=$DASH --num-cpus=4 --temp-dir="$WORK/head" $(head_ports)
wait_for 90 "Ray head" curl -sf "http://127.0.0.1:$DASH/api/gcs_healthz"

say "3. a second Ray node joins (on a real cluster: another machine)"
bg ray-node ray start --address=127.0.0.1:$GCS --block --disable-usage-stats --num-cpus=0 \
  --temp-dir="$WORK/node" $(node_ports)
two_nodes() { [ "$(ray list nodes --address "http://127.0.0.1:$DASH" --filter state=ALIVE \
  --format json | python -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]; }
wait_for 90 "two live nodes" two_nodes
NODE_ID=$(ray list nodes --address "http://127.0.0.1:$DASH" --filter state=ALIVE \
  --filter is_head_node=False --format json | python -c 'import json,sys; print(json.load(sys.stdin)[0]["node_id"])')
echo "second node: $NODE_ID"

say "4. the agents on Ray Serve, kodosumi's spooler, the panel"
cat > "$WORK/serve.yaml" <<EOF
proxy_location: HeadOnly
http_options: {host: 127.0.0.1, port: $SERVE}
applications:
  - {name: quick, route_prefix: /quick, import_path: "kodosumi_timer.demo_agents:quick"}
EOF
run serve deploy "$WORK/serve.yaml" --address "http://127.0.0.1:$DASH"
wait_for 120 "the agent on Serve" curl -sf "http://127.0.0.1:$SERVE/quick/openapi.json"
bg spooler koco spool --block --ray-server 127.0.0.1:$GCS --exec-dir "$KODO_EXEC_DIR"
bg panel koco-timer serve --address "http://127.0.0.1:$PANEL" --exec-dir "$KODO_EXEC_DIR" \
  --register "http://127.0.0.1:$SERVE/-/routes"
wait_for 120 "the panel" curl -sf "http://127.0.0.1:$PANEL/login?name=admin&password=admin"

say "5. the timer, a Ray actor placed on the second node"
run koco-timer start --actor --node "$NODE_ID"
run koco-timer status
run koco-timer status --json > "$WORK/status.json"
python - "$WORK/status.json" "$NODE_ID" <<'EOF'
import json, sys
timer = json.load(open(sys.argv[1]))["timer"]
assert timer["node_id"] == sys.argv[2], timer
print(f"ok: status --json says node {timer['node_id'][:12]}… ip {timer['node_ip']}")
EOF
curl -sf "http://127.0.0.1:$PANEL/metrics" | grep -E '^kodosumi_timer_(up|info)' | tee "$WORK/metrics.txt"
grep -q "node_id=\"$NODE_ID\"" "$WORK/metrics.txt" || { echo "FAILED: /metrics names no node" >&2; exit 1; }
echo "ok: /metrics names the node"

TOKEN=$(curl -sf "http://127.0.0.1:$PANEL/login?name=admin&password=admin" |
  python -c 'import json,sys; print(json.load(sys.stdin)["KODOSUMI_API_KEY"])')
api() { curl -sf -H "KODOSUMI_API_KEY: $TOKEN" -H 'content-type: application/json' "$@"; }
schedule_in() {  # schedule_in SECONDS TITLE -> schedule id
  local at; at=$(python -c "from datetime import *; print((datetime.now(UTC)+timedelta(seconds=$1)).isoformat())")
  api -X POST "http://127.0.0.1:$PANEL/schedule/" -d "{\"flow_url\": \"/-/127.0.0.1/$SERVE/quick/-/\",
    \"schedule_type\": \"once\", \"run_at\": \"$at\", \"title\": \"$2\", \"inputs\": {\"message\": \"$2\"}}" |
    python -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
finished() { api "http://127.0.0.1:$PANEL/schedule/$1" | python -c \
  'import json,sys; sys.exit(json.load(sys.stdin)["last_status"] != "finished")'; }

say "6. a schedule fires through the timer on the second node"
SID=$(schedule_in 5 "deploy check")
wait_for 60 "schedule $SID finished" finished "$SID"

say "7. backups of the store"
PG_URL=${KODO_TIMER_DATABASE/+asyncpg/}
run pg_dump --format=custom --file="$WORK/schedule.dump" \
  --table='schedule*' --table=notification --table=notify_cursor "$PG_URL"
pg_restore --list "$WORK/schedule.dump" | grep -c 'TABLE DATA' | sed 's/^/ok: tables in the dump: /'
run env KODO_TIMER_DATABASE="sqlite+aiosqlite:///$DATA/schedule.db" koco-timer db upgrade
run sqlite3 "$DATA/schedule.db" ".backup '$DATA/schedule-backup.db'"
run sqlite3 "$DATA/schedule-backup.db" "PRAGMA integrity_check;"

say "8. the drill: the second node is lost (its processes killed by pid)"
SID=$(schedule_in 25 "after the loss")
kill_session "$(session_of ray-node)" KILL
LOST=$SECONDS
moved() { koco-timer status --json | python -c \
  "import json,sys; t=json.load(sys.stdin)['timer']; sys.exit(t.get('node_id') in (None, '$NODE_ID'))"; }
# what the starter loop beside the head does (docs/DEPLOY.md): start the timer whenever
# none runs; `start --actor` replaces the timer stranded on the lost node
starter() { koco-timer status >/dev/null 2>&1 || koco-timer start --actor; }
wait_for 120 "the starter loop to start the timer again" starter
wait_for 60 "the timer on another node" moved
echo "running again $((SECONDS - LOST)) s after the loss"
run koco-timer status
wait_for 90 "the slot after the loss fired and finished" finished "$SID"

say "9. the timer stopped (it finishes the step in hand)"
run koco-timer stop
echo "ALL CHECKS PASSED"
