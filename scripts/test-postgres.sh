#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the tests and print the
# URL to export as TWOFA_TEST_POSTGRES_URL. Usage:
#   eval "$(scripts/test-postgres.sh start /tmp/twofa-pg)"   # sets the variable
#   scripts/test-postgres.sh stop /tmp/twofa-pg
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# postgres user that Debian's postgresql package creates.
set -euo pipefail

action=${1:?usage: $0 start|stop FOLDER [PORT]}
folder=${2:?usage: $0 start|stop FOLDER [PORT]}
port=${3:-54329}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ]; then
    echo "PostgreSQL server binaries not found: apt-get install postgresql" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$action" in
start)
    mkdir -p "$folder"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$folder"; fi
    if [ ! -f "$folder/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$folder/data" -U twofa --auth=trust -E UTF8 >/dev/null
    fi
    as_owner "$bin/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$folder -c fsync=on -c max_connections=200" \
        start >/dev/null
    echo "export TWOFA_TEST_POSTGRES_URL=postgresql+psycopg://twofa@127.0.0.1:$port/postgres"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$folder/data" -m fast stop >/dev/null
    ;;
*)
    echo "unknown action $action: use start or stop" >&2
    exit 2
    ;;
esac
