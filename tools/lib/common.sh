# Shared set-up for tools/demo, tools/test and tools/bench: install what is
# missing, build, and run a throwaway PostgreSQL. Source it; do not run it.

IMAGEN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGEN_PACKAGES=(build-essential cmake pkg-config libcaf-dev libpq-dev
  libspdlog-dev libcli11-dev libtomlplusplus-dev libpng-dev libssl-dev
  libgtest-dev postgresql postgresql-contrib)

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Installs the Debian packages the build and the tests need, when missing.
ensure_packages() {
  local missing=() pkg
  for pkg in "${IMAGEN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

# build DIR TYPE [cmake args...]: configures and builds into DIR.
build() {
  local dir=$1 type=$2
  shift 2
  cmake -S "$IMAGEN_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" \
    >/dev/null || die "cmake configure failed in $dir"
  cmake --build "$dir" -j "$(nproc)" || die "build failed in $dir"
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] || die "no PostgreSQL server found under /usr/lib/postgresql"
  printf '%s\n' "$dir"
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
      printf '%s\n' "$port"
      return 0
    }
  done
  die "no free port found"
}

# pg_start: starts a throwaway server in a temporary directory, listening
# on a unix socket and on 127.0.0.1 at a free port; sets PG_DIR, PG_PORT,
# PG_SOCKET, PG_URL (database "imagen") and PG_ADMIN_URL (database
# "postgres"). initdb refuses root, so as root it runs as user postgres.
pg_start() {
  local bin run=()
  bin=$(pg_bindir)
  PG_DIR=$(mktemp -d /tmp/imagen-pg.XXXXXX)
  PG_PORT=$(free_port)
  PG_SOCKET=$PG_DIR/socket
  mkdir -p "$PG_SOCKET"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres is missing"
    chown -R postgres "$PG_DIR"
    chmod 755 "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust \
    --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 5 "$PG_DIR/initdb.log")"
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
CONF
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -t 60 start >/dev/null || die "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/server.log")"
  PG_RUN=("${run[@]}")
  PG_BIN=$bin
  PG_ADMIN_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/imagen"
  "$bin/psql" -q -X -d "$PG_ADMIN_URL" -c 'CREATE DATABASE imagen' >/dev/null ||
    die "could not create database imagen"
  export PG_DIR PG_PORT PG_SOCKET PG_URL PG_ADMIN_URL PG_BIN
  say "PostgreSQL started: port=$PG_PORT dir=$PG_DIR"
}

# pg_stop: stops the server of pg_start and removes its directory. Safe to
# call from a trap at any point: before pg_start, half way through it (the
# server may or may not be up yet), or twice.
pg_stop() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
  local bin run=()
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    bin=${PG_BIN:-$(pg_bindir)}
    [ "$(id -u)" -ne 0 ] || run=(runuser -u postgres --)
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop \
      >/dev/null 2>&1 || true
  fi
  # Only ever a directory that pg_start made.
  case $PG_DIR in /tmp/imagen-pg.*) rm -rf "$PG_DIR" ;; esac
  PG_DIR=""
}
