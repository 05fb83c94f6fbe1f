#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis from Debian's packages, on loopback, for runboard's cluster tests.
#
#   scripts/services.sh install        installs postgresql and redis-server when missing (as root, apt)
#   scripts/services.sh start DIR      starts both with their data in DIR; prints DATABASE_URL=… and REDIS_URL=…
#   scripts/services.sh stop DIR       stops both and removes DIR
#
# Ports: PGPORT and REDIS_PORT, or free ones picked below 32768 (above it, an outgoing connection's
# ephemeral port may take them). initdb refuses root, so Postgres runs as the postgres user.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

free_port() {
  node -e '
    const net = require("node:net");
    const tryPort = () => {
      const port = 20000 + Math.floor(Math.random() * 12000);
      const server = net.createServer().once("error", tryPort).listen(port, "127.0.0.1", () => server.close(() => console.log(port)));
    };
    tryPort();'
}

case "${1:-}" in
  install)
    if [ -z "$(pg_bin)" ] || ! command -v redis-server >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      # Guarded: an unguarded install upgrades packages that are already there.
      apt-get install -y -qq --no-install-recommends postgresql redis-server >/dev/null
    fi
    ;;
  start)
    dir=${2:?usage: services.sh start DIR}
    PGBIN=$(pg_bin)
    [ -n "$PGBIN" ] && command -v redis-server >/dev/null || { echo "postgresql or redis-server is not installed: run scripts/services.sh install" >&2; exit 1; }
    mkdir -p "$dir"
    pgport=${PGPORT:-$(free_port)}
    redisport=${REDIS_PORT:-$(free_port)}
    as_postgres=()
    # The postgres user must reach DIR: give a DIR whose parents it can traverse (mktemp -d under /tmp, say).
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; as_postgres=(runuser -u postgres --); fi
    "${as_postgres[@]}" "$PGBIN/initdb" -D "$dir/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null
    "${as_postgres[@]}" "$PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $pgport -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null \
      || { cat "$dir/pg.log" >&2; exit 1; }
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redisport" --save '' --appendonly no \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 100); do redis-cli -p "$redisport" ping >/dev/null 2>&1 && break; sleep 0.05; done
    redis-cli -p "$redisport" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
    echo "$pgport" >"$dir/pg.port"
    echo "$redisport" >"$dir/redis.port"
    echo "DATABASE_URL=postgresql://postgres@127.0.0.1:$pgport/postgres"
    echo "REDIS_URL=redis://127.0.0.1:$redisport"
    ;;
  stop)
    dir=${2:?usage: services.sh stop DIR}
    PGBIN=$(pg_bin)
    as_postgres=()
    [ "$(id -u)" = 0 ] && as_postgres=(runuser -u postgres --)
    [ -d "$dir/pg" ] && "${as_postgres[@]}" "$PGBIN/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
    [ -f "$dir/redis.port" ] && redis-cli -p "$(cat "$dir/redis.port")" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: services.sh install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
