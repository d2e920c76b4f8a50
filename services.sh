# Sourced by run.sh, test.sh and bench.sh: install what is missing, start Postgres and RabbitMQ on loopback with their
# data in the directories given, wherever they lie, and stop, by process group, everything this shell started.

STARTED=()

install_missing() { # PACKAGE...
  local missing=() package
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  # Another apt run (unattended upgrades do one on a machine's first boot) may hold apt's and dpkg's locks: wait for it,
  # saying so, 10 minutes at most. (apt-get waits for dpkg's lock when told, but not update for the lists' lock.)
  local tries=0 error advice="could not install ${missing[*]}; when no other apt run holds its lock, run: apt-get install -y ${missing[*]}"
  until error=$(apt-get update -qq 2>&1); do
    if [[ $error != *"Could not get lock"* ]] || ((tries++ == 120)); then
      echo "$error" >&2
      echo "$advice" >&2
      exit 1
    fi
    ((tries == 1)) && echo "waiting for another apt run to end: ${error%%$'\n'*}"
    sleep 5
  done
  if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null; then
    echo "$advice" >&2
    exit 1
  fi
}

# The prefix that runs a command as a service account when we are root (Postgres refuses root); none otherwise. It
# runs from /, as the account may not be able to enter our working directory: every path given to it is absolute.
as() { # USER
  if [ "$(id -u)" -eq 0 ]; then echo "runuser -u $1 -- env -C /"; fi
}

# Lets a service account reach DIR when we are root and DIR lies below a directory it cannot enter, such as a 0700
# home: it gets search permission alone, as an ACL entry for it only, on each such directory above DIR.
reach() { # USER DIR
  local parent
  parent=$(dirname "$2")
  [ "$(id -u)" -eq 0 ] && [ "$parent" != "$2" ] || return 0 # not root, the services run as us; or past /
  reach "$1" "$parent" || return 1 # from / down, as a directory can be tested only once its parent can be entered
  runuser -u "$1" -- test -x "$parent" && return
  setfacl -m "u:$1:x" "$parent" 2>/dev/null && return
  echo "$1 cannot enter $parent, whose filesystem takes no ACL: clone elsewhere, or run: chmod o+x $parent" >&2
  return 1
}

# Starts a command in a process group of its own, so that stop_started ends it with everything it spawned.
start() { # LOG COMMAND...
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  STARTED+=($!)
}

require_free_port() { # PORT WHAT
  if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "port $1 is taken: is $2 already running?" >&2
    return 1
  fi
}

wait_port() { # PORT WHAT
  for _ in $(seq 120); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.5
  done
  echo "$2 did not open port $1" >&2
  return 1
}

start_postgres() { # DIR PORT [MAX_CONNECTIONS]
  local dir port=$2 connections=${3:-100} bin=/usr/lib/postgresql/15/bin socket
  dir=$(realpath -m "$1")
  socket=$dir/.s.PGSQL.$port
  require_free_port "$port" Postgres || return 1
  # The socket lies in the data directory, out of other users' reach, and a socket's path holds at most 107 bytes.
  if [ ${#socket} -gt 107 ]; then
    echo "Postgres's socket would be $socket, over 107 bytes: clone to a shorter path" >&2
    return 1
  fi
  mkdir -p "$dir"
  reach postgres "$dir" || return 1
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  chmod 700 "$dir"
  [ -f "$dir/PG_VERSION" ] || $(as postgres) $bin/initdb -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  # In its configuration, so that a restart (postgres_ctl) keeps it.
  $(as postgres) sed -i "s/^#\?max_connections = [0-9]*/max_connections = $connections/" "$dir/postgresql.conf"
  start "$dir.log" $(as postgres) $bin/postgres -D "$dir" -p "$port" -h 127.0.0.1 -k "$dir"
  POSTGRES_DIR=$dir
  wait_port "$port" Postgres || return 1
  until $(as postgres) psql -qAt -h "$dir" -p "$port" -U postgres -c 'SELECT 1' >/dev/null 2>&1; do sleep 0.2; done
  local psql=(env PGOPTIONS=--client-min-messages=warning $(as postgres) psql -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres)
  if [ -z "$("${psql[@]}" -At -c "SELECT 1 FROM pg_roles WHERE rolname = 'imageprocessor'")" ]; then
    "${psql[@]}" -c "CREATE ROLE imageprocessor LOGIN PASSWORD 'imageprocessor'"
    "${psql[@]}" -c "CREATE DATABASE imageprocessor OWNER imageprocessor"
  fi
  # On stdin, as postgres may not be able to read the file itself.
  "${psql[@]}" -d imageprocessor -c 'SET ROLE imageprocessor' -f - <db/schema.sql >/dev/null
}

start_rabbitmq() { # DIR PORT [MANAGEMENT_PORT]
  local dir port=$2 management=${3:-}
  dir=$(realpath -m "$1")
  require_free_port "$port" RabbitMQ || return 1
  require_free_port $((port + 20000)) "RabbitMQ's Erlang distribution" || return 1
  mkdir -p "$dir/mnesia" "$dir/log"
  reach rabbitmq "$dir" || return 1
  echo "listeners.tcp.1 = 127.0.0.1:$port" >"$dir/rabbitmq.conf"
  echo "[${management:+rabbitmq_management}]." >"$dir/enabled_plugins"
  [ -n "$management" ] && printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "$management" >>"$dir/rabbitmq.conf"
  [ "$(id -u)" -eq 0 ] && chown -R rabbitmq "$dir"
  export ERL_EPMD_ADDRESS=127.0.0.1 # the Erlang port mapper, too, answers on loopback only
  (echo >/dev/tcp/127.0.0.1/4369) 2>/dev/null || start "$dir/epmd.log" $(as rabbitmq) epmd
  start "$dir/rabbitmq.log" $(as rabbitmq) env HOME="$dir" RABBITMQ_NODENAME="rabbit$port@localhost" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_DIST_PORT=$((port + 20000)) RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" /usr/lib/rabbitmq/bin/rabbitmq-server
  wait_port "$port" RabbitMQ || return 1
  # The queues the services use (db/definitions.json), on stdin, as rabbitmq may not be able to read the file itself.
  rabbitmq_ctl "$dir" "$port" import_definitions <"$(dirname "${BASH_SOURCE[0]}")/db/definitions.json" >/dev/null
}

# Stops or starts again the Postgres that start_postgres started; the fault tests restart it mid-batch. One started
# by pg_ctl is not in a process group of ours, so stop_started stops it with pg_ctl too.
postgres_ctl() { # DIR PORT stop|start
  local options=(-m fast)
  [ "$3" = start ] && options=(-l "$1/restarted.log" -o "-p $2 -h 127.0.0.1 -k $1")
  $(as postgres) /usr/lib/postgresql/15/bin/pg_ctl -D "$1" -w "${options[@]}" "$3" >/dev/null
}

# Runs rabbitmqctl against the RabbitMQ that start_rabbitmq started (stop_app and start_app restart the broker).
rabbitmq_ctl() { # DIR PORT COMMAND...
  # The tool's own Erlang distribution port is by default 35672, our test broker's port: it gets one beside the node's.
  $(as rabbitmq) env HOME="$1" ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_CTL_DIST_PORT_MIN=$(($2 + 20001)) \
    RABBITMQ_CTL_DIST_PORT_MAX=$(($2 + 20010)) /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "rabbit$2@localhost" "${@:3}"
}

# Waits, up to TENTHS tenths of a second, until no process is left in the group (kill -0 answers while any is).
group_ended() { # PGID TENTHS
  for _ in $(seq "$2"); do
    kill -0 -- "-$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop_started() {
  local pid i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do # newest first: the services before what they depend on
    kill -TERM -- "-${STARTED[i]}" 2>/dev/null || true # one may be gone already: the fault tests stop servers
  done
  for pid in "${STARTED[@]}"; do
    # The whole group, not only its leader: runuser ends 2 s after its TERM, while RabbitMQ may still be stopping
    # with its ports open.
    group_ended "$pid" 100 || kill -KILL -- "-$pid" 2>/dev/null || true
    group_ended "$pid" 50 || true
  done
  STARTED=()
  if [ -n "${POSTGRES_DIR:-}" ] && [ -f "$POSTGRES_DIR/postmaster.pid" ]; then
    $(as postgres) /usr/lib/postgresql/15/bin/pg_ctl -D "$POSTGRES_DIR" -m fast stop >/dev/null || true
  fi
}
