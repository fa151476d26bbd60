#!/usr/bin/env bash
# Real-node measurements of Miroir's speed (README "Measurements").
#
#   bench/real_nodes.sh up           start nodes, nginx and two Miroirs; load the corpus
#   bench/real_nodes.sh passthrough  GET /version, 8 connections: direct, nginx, Miroir
#   bench/real_nodes.sh search1      a 20-hit search, one node behind nginx and behind Miroir
#   bench/real_nodes.sh latency      400 queries one at a time: one node vs two pinned shards,
#                                    Miroir and a relay that only forwards (PER_QUERY=FILE)
#   bench/real_nodes.sh phases       the same queries through Miroir and to `b` alone, traced
#                                    (ftrace): wakeups and Miroir's own work, per search
#   bench/real_nodes.sh instant      Miroir's CPU per 3-shard 20-hit search, instant upstreams
#   bench/real_nodes.sh ingest       the corpus through Miroir into 3 fresh nodes vs their shares
#   bench/real_nodes.sh down         stop everything
#
# Nodes: `one` holds every document (fed through a Miroir in front of it alone, so it holds
# the same fields and settings); `a` and `b` hold half the shards each behind a second Miroir.
# `one` and `a` are pinned to core 0, `b` to core 1 (taskset); Miroir, nginx and the load
# generator float. Environment: MEILI_BIN (default ../shared/meilisearch/meilisearch beside
# the checkout), MIROIR_BIN and LOADTEST_BIN (default target/release/), WORK (default
# /tmp/miroir-real), DOCUMENTS (60000), SECONDS_EACH (5).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MEILI_BIN=${MEILI_BIN:-$ROOT/../shared/meilisearch/meilisearch}
MIROIR_BIN=${MIROIR_BIN:-$ROOT/target/release/miroir}
LOADTEST_BIN=${LOADTEST_BIN:-$ROOT/target/release/miroir-loadtest}
WORK=${WORK:-/tmp/miroir-real}
DOCUMENTS=${DOCUMENTS:-60000}
SECONDS_EACH=${SECONDS_EACH:-5}
KEY=masterKey
# Ports: nodes 7711 (one), 7712 (a), 7713 (b); Miroir over `one` 7721, over a+b 7722, over the
# instant upstreams 7723, over the ingest nodes 7724; nginx in front of `one` 7731, the relay
# over a+b 7735, instant upstreams 7741-7743; ingest nodes 7751-7753 (unpinned).
declare -A NODE_PORT=([one]=7711 [a]=7712 [b]=7713 [i1]=7741 [i2]=7742 [i3]=7743
	[n1]=7751 [n2]=7752 [n3]=7753)
declare -A NODE_CPU=([one]=0 [a]=0 [b]=1 [n1]=0-1 [n2]=0-1 [n3]=0-1)
INGEST_NODES=(n1 n2 n3)

# Installs what the measurements use when it is missing (Debian; as scripts/setup.sh does).
tools() {
	local missing=() tool
	for tool in nginx jq bc curl taskset; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	missing=("${missing[@]/taskset/util-linux}")
	echo "real_nodes: installing ${missing[*]}" >&2
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_node() {
	local name=$1 port=${NODE_PORT[$1]} cpu=${NODE_CPU[$1]} dir=$WORK/$1
	mkdir -p "$dir"
	taskset -c "$cpu" "$MEILI_BIN" --http-addr "127.0.0.1:$port" --master-key "$KEY" \
		--no-analytics --db-path "$dir/data.ms" --dump-dir "$dir/d" --snapshot-dir "$dir/s" \
		--max-indexing-threads 1 >"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	wait_http "127.0.0.1:$port/health"
}

wait_http() {
	for _ in $(seq 1 200); do
		curl -fs "http://$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

start_miroir() {
	local name=$1 port=$2
	shift 2
	local dir=$WORK/$name
	mkdir -p "$dir"
	{
		printf 'shards = 16\nmaster_key = "%s"\ndata_dir = "%s/data"\n' "$KEY" "$dir"
		printf '[server]\nport = %s\n[metrics]\nenabled = false\n[log]\nlevel = "warn"\n' "$port"
		for node in "$@"; do
			printf '[[nodes]]\nid = "%s"\naddress = "http://127.0.0.1:%s"\n' "$node" "${NODE_PORT[$node]}"
		done
	} >"$dir/miroir.toml"
	"$MIROIR_BIN" --config "$dir/miroir.toml" >"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	wait_http "127.0.0.1:$port/health"
}

start_nginx() {
	local dir=$WORK/nginx
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    upstream node { server 127.0.0.1:${NODE_PORT[one]}; keepalive 32; }
    server {
        listen 127.0.0.1:7731;
        location / {
            proxy_pass http://node;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
        }
    }
}
EOF
	nginx -c "$dir/nginx.conf"
	wait_http "127.0.0.1:7731/health"
}

# Sends the corpus through a Miroir in batches and waits for its last task.
feed() {
	local port=$1
	curl -fs -X POST "http://127.0.0.1:$port/indexes" -H "Authorization: Bearer $KEY" \
		-H 'Content-Type: application/json' -d '{"uid":"movies","primaryKey":"id"}' >/dev/null
	local task
	task=$(curl -fs -X PATCH "http://127.0.0.1:$port/indexes/movies/settings" \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		-d '{"filterableAttributes":["genre","year"],"sortableAttributes":["rating","year"]}' | jq .taskUid)
	wait_task "$port" "$task"
	split -l 10000 "$WORK/docs.ndjson" "$WORK/batch."
	for f in "$WORK"/batch.*; do
		task=$(curl -fs -X POST "http://127.0.0.1:$port/indexes/movies/documents" \
			-H "Authorization: Bearer $KEY" -H 'Content-Type: application/x-ndjson' \
			--data-binary "@$f" | jq .taskUid)
	done
	rm -f "$WORK"/batch.*
	wait_task "$port" "$task"
}

wait_task() {
	local status
	for _ in $(seq 1 30000); do
		status=$(curl -fs "http://127.0.0.1:$1/tasks/$2" -H "Authorization: Bearer $KEY" | jq -r .status)
		case $status in
		succeeded) return 0 ;;
		failed | canceled)
			echo "task $2 on :$1 $status" >&2
			return 1
			;;
		esac
		sleep 0.05
	done
	return 1
}

up() {
	mkdir -p "$WORK"
	"$LOADTEST_BIN" corpus --documents "$DOCUMENTS" --out "$WORK/docs.ndjson" \
		--queries-out "$WORK/queries.ndjson"
	for n in one a b; do start_node "$n"; done
	start_miroir miroir1 7721 one
	start_miroir miroir2 7722 a b
	start_nginx
	feed 7721
	feed 7722
	echo "up: one :7711 a :7712 b :7713, miroir over one :7721, over a+b :7722, nginx :7731"
}

# Restarts both Miroirs (another binary: MIROIR_BIN=...), keeping the nodes and their data.
restart_miroir() {
	local pid
	for m in miroir1 miroir2; do
		pid=$(cat "$WORK/$m/pid")
		kill "$pid" 2>/dev/null || true
		while [ -e "/proc/$pid" ]; do sleep 0.1; done
	done
	start_miroir miroir1 7721 one
	start_miroir miroir2 7722 a b
}

down() {
	[ -f "$WORK/nginx/nginx.pid" ] && nginx -c "$WORK/nginx/nginx.conf" -s stop 2>/dev/null || true
	for p in "$WORK"/*/pid; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
	done
}

run() {
	"$LOADTEST_BIN" run --key "$KEY" --seconds "$SECONDS_EACH" "$@"
}

passthrough() {
	for round in 1 2 3; do
		for t in direct=7711 nginx=7731 miroir=7721; do
			printf '%-7s round %s  ' "${t%=*}" "$round"
			run --target "127.0.0.1:${t#*=}" --path /version --connections 8
		done
	done
}

search1() {
	local body='{"q":"tosvaterlo velfi","limit":20}'
	for round in 1 2 3; do
		for t in direct=7711 nginx=7731 miroir=7721; do
			printf '%-7s round %s  ' "${t%=*}" "$round"
			run --target "127.0.0.1:${t#*=}" --method POST --path /indexes/movies/search \
				--body "$body" --connections 8
		done
	done
}

# Three "nodes" that answer every search at once with a node's real 20-hit answer (nginx
# `return`), everything else from node `one`: Miroir's own CPU per search, read from
# /proc/PID/stat around a load of 8 connections.
instant() {
	local dir=$WORK/instant body='{"q":"tosvaterlo velfi","limit":20}'
	mkdir -p "$dir"
	# What a node answers Miroir: its own body shape, with the ranking details it is asked for.
	local answer
	answer=$(curl -fs -X POST "http://127.0.0.1:${NODE_PORT[a]}/indexes/movies/search" \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		-d "{\"q\":\"tosvaterlo velfi\",\"offset\":0,\"limit\":20,${NODE_SHOW:-\"showRankingScore\":true}}")
	printf '%s' "$answer" >"$dir/answer.json"
	{
		printf 'worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$dir" "$dir"
		printf 'events { worker_connections 1024; }\nhttp {\n access_log off;\n'
		printf ' upstream node { server 127.0.0.1:%s; keepalive 16; }\n' "${NODE_PORT[one]}"
		for port in 7741 7742 7743; do
			printf ' server {\n  listen 127.0.0.1:%s;\n' "$port"
			printf '  location = /indexes/movies/search { default_type application/json; alias %s/answer.json; error_page 405 =200 $uri; }\n' "$dir"
			printf '  location / { proxy_pass http://node; proxy_http_version 1.1; proxy_set_header Connection ""; }\n }\n'
		done
		printf '}\n'
	} >"$dir/nginx.conf"
	nginx -c "$dir/nginx.conf"
	start_miroir miroir3 7723 i1 i2 i3
	local pid ticks before after requests
	pid=$(cat "$WORK/miroir3/pid")
	ticks=$(getconf CLK_TCK)
	run --target 127.0.0.1:7723 --method POST --path /indexes/movies/search --body "$body" \
		--connections 8 --seconds 1 >/dev/null
	for round in 1 2 3; do
		before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		out=$(run --target 127.0.0.1:7723 --method POST --path /indexes/movies/search \
			--body "$body" --connections 8)
		after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		requests=$(echo "$out" | sed -E 's/.*\(([0-9]+) requests.*/\1/')
		echo "$out"
		echo "round $round: Miroir CPU $(((after - before) * 1000000 / ticks / requests)) us per search"
	done
	kill "$pid"
	while [ -e "/proc/$pid" ]; do sleep 0.1; done
	nginx -c "$dir/nginx.conf" -s stop
	while [ -e "$dir/nginx.pid" ]; do sleep 0.1; done
}

# `relay` forwards each query to both shards and answers the first one's body, no more: the
# fan-out floor, what any proxy in front of the two pinned shards pays on this machine.
latency() {
	"$LOADTEST_BIN" relay --listen 7735 --upstreams 127.0.0.1:7712,127.0.0.1:7713 &
	local relay=$!
	until curl -s -o /dev/null http://127.0.0.1:7735/health; do sleep 0.1; done
	"$LOADTEST_BIN" latency --key "$KEY" --index movies --queries "$WORK/queries.ndjson" \
		--targets one=127.0.0.1:7711,a=127.0.0.1:7712,b=127.0.0.1:7713,miroir=127.0.0.1:7722,relay=127.0.0.1:7735 \
		--max-of a,b --together a,b --rounds "${ROUNDS:-1}" ${PER_QUERY:+--per-query "$PER_QUERY"}
	kill "$relay"
}

# The socket system calls of the load generator, Miroir and the nodes, from the kernel's
# tracepoints (root, tracefs): each search through Miroir split into wakeups and Miroir's
# work (`miroir-loadtest phases`), and a direct search to `b` for its two wakeups.
phases() {
	local fs=/sys/kernel/tracing calls=(sys_enter_sendto sys_enter_recvfrom
		sys_enter_io_uring_enter sys_exit_io_uring_enter) e target
	[ -d "$fs/events/syscalls" ] || fs=/sys/kernel/debug/tracing
	[ -d "$fs/events/syscalls" ] || { echo "phases: no syscall tracepoints (tracefs)" >&2; return 1; }
	echo 0 >"$fs/tracing_on"
	echo mono >"$fs/trace_clock"
	echo 16384 >"$fs/buffer_size_kb"
	for e in "${calls[@]}"; do echo 1 >"$fs/events/syscalls/$e/enable"; done
	for target in miroir=127.0.0.1:7722 b=127.0.0.1:7713; do
		echo >"$fs/trace"
		echo 1 >"$fs/tracing_on"
		"$LOADTEST_BIN" latency --key "$KEY" --index movies --queries "$WORK/queries.ndjson" \
			--targets "$target" --rounds 1 | tail -1
		echo 0 >"$fs/tracing_on"
		cp "$fs/trace" "$WORK/trace.${target%%=*}"
	done
	for e in "${calls[@]}"; do echo 0 >"$fs/events/syscalls/$e/enable"; done
	echo "through Miroir (its worker threads are miroir-w*):"
	"$LOADTEST_BIN" phases --trace "$WORK/trace.miroir" --proxy miroir-w
	echo "to b directly:"
	"$LOADTEST_BIN" phases --trace "$WORK/trace.b"
}

# Stops the ingest nodes and starts them again empty.
fresh_ingest_nodes() {
	local n pid
	for n in "${INGEST_NODES[@]}"; do
		if [ -f "$WORK/$n/pid" ]; then
			pid=$(cat "$WORK/$n/pid")
			kill "$pid" 2>/dev/null || true
			while [ -e "/proc/$pid" ]; do sleep 0.1; done
		fi
		rm -rf "${WORK:?}/$n"
	done
	for n in "${INGEST_NODES[@]}"; do start_node "$n"; done
}

# Feeds one node its share directly: the index, the settings Miroir gave it, then the
# documents in $2 pieces; writes the last task's uid to $WORK/shares/<node>.task.
feed_share() {
	local node=$1 pieces=$2 port=${NODE_PORT[$1]} dir=$WORK/shares task lines
	curl -fs -X POST "http://127.0.0.1:$port/indexes" -H "Authorization: Bearer $KEY" \
		-H 'Content-Type: application/json' -d '{"uid":"movies","primaryKey":"id"}' >/dev/null
	curl -fs -X PATCH "http://127.0.0.1:$port/indexes/movies/settings" \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		--data-binary "@$dir/$node.settings.json" >/dev/null
	lines=$(wc -l <"$dir/$node.ndjson")
	split -l $(((lines + pieces - 1) / pieces)) "$dir/$node.ndjson" "$dir/$node.piece."
	for f in "$dir/$node".piece.*; do
		task=$(curl -fs -X POST "http://127.0.0.1:$port/indexes/movies/documents" \
			-H "Authorization: Bearer $KEY" -H 'Content-Type: application/x-ndjson' \
			--data-binary "@$f" | jq .taskUid)
	done
	rm -f "$dir/$node".piece.*
	echo "$task" >"$dir/$node.task"
}

# The corpus into 3 fresh unpinned nodes (RF 1, 16 shards) through Miroir, against the same
# nodes fresh again and fed concurrently what Miroir gave each (its documents as stored, with
# `_miroir_shard`, and its settings) in as many requests: the floor for a sharded ingest.
ingest() {
	mkdir -p "$WORK/shares"
	[ -f "$WORK/docs.ndjson" ] || "$LOADTEST_BIN" corpus --documents "$DOCUMENTS" \
		--out "$WORK/docs.ndjson" --queries-out "$WORK/queries.ndjson"
	local batches start through direct n pid
	batches=$(((($(wc -l <"$WORK/docs.ndjson") + 9999)) / 10000))
	for round in $(seq 1 "${ROUNDS:-1}"); do
		fresh_ingest_nodes
		start_miroir miroir4 7724 "${INGEST_NODES[@]}"
		start=$(date +%s.%N)
		feed 7724
		through=$(echo "$(date +%s.%N) - $start" | bc)
		pid=$(cat "$WORK/miroir4/pid")
		kill "$pid"
		while [ -e "/proc/$pid" ]; do sleep 0.1; done
		rm -rf "$WORK/miroir4"
		for n in "${INGEST_NODES[@]}"; do
			local port=${NODE_PORT[$n]}
			curl -fs "http://127.0.0.1:$port/indexes/movies/documents?limit=1000000" \
				-H "Authorization: Bearer $KEY" | jq -c '.results[]' >"$WORK/shares/$n.ndjson"
			curl -fs "http://127.0.0.1:$port/indexes/movies/settings" -H "Authorization: Bearer $KEY" |
				jq '{filterableAttributes, sortableAttributes, searchableAttributes, displayedAttributes, rankingRules}' \
					>"$WORK/shares/$n.settings.json"
		done
		fresh_ingest_nodes
		start=$(date +%s.%N)
		local feeders=()
		for n in "${INGEST_NODES[@]}"; do
			feed_share "$n" "$batches" &
			feeders+=($!)
		done
		for pid in "${feeders[@]}"; do wait "$pid"; done
		# One poller, as for Miroir: three would take CPU the nodes index with.
		for n in "${INGEST_NODES[@]}"; do
			wait_task "${NODE_PORT[$n]}" "$(cat "$WORK/shares/$n.task")"
		done
		direct=$(echo "$(date +%s.%N) - $start" | bc)
		printf 'round %s: through Miroir %.2f s, shares fed directly %.2f s (%s documents: %s), ratio %.3f\n' \
			"$round" "$through" "$direct" "$(cat "$WORK"/shares/*.ndjson | wc -l)" \
			"$(for n in "${INGEST_NODES[@]}"; do wc -l <"$WORK/shares/$n.ndjson"; done | paste -sd/)" \
			"$(echo "$through / $direct" | bc -l)"
	done
	for n in "${INGEST_NODES[@]}"; do kill "$(cat "$WORK/$n/pid")" 2>/dev/null || true; done
}

case ${1:-} in
up | passthrough | search1 | latency | phases | instant | ingest | restart_miroir)
	tools
	"$1"
	;;
down) down ;;
*)
	sed -n '2,12p' "$0"
	exit 2
	;;
esac
