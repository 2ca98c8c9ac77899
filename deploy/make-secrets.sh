#!/bin/sh
# Make the secret files deploy/compose.yaml mounts. The folder is its owner's only (0700); the
# files in it are 0644, because compose mounts them as they are and the containers read them as
# users of their own (postgres, awe's uid 10001): the folder keeps the host's other users out.
# Run once, before the first `docker compose up`; an existing file is kept, so running it again
# changes nothing. Back the folder up: the instance key opens every sealed secret awe stores.
set -eu
cd "$(dirname "$0")"
umask 022
mkdir -p secrets
chmod 700 secrets

random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
keep() { [ -s "secrets/$1" ] || printf '%s\n' "$2" > "secrets/$1"; }

keep postgres_password "$(random 32)"
password=$(cat secrets/postgres_password)
keep pgbouncer_userlist.txt "\"awe\" \"$password\""
# Through pgbouncer for queries; straight to PostgreSQL for LISTEN/NOTIFY and migrations.
keep awe_database_url "postgresql://awe:$password@pgbouncer:6432/awe"
keep awe_database_listen_url "postgresql://awe:$password@postgres:5432/awe"
keep awe_jwt_secret "$(random 48)"
keep awe_secret_key "$(random 48)"
keep grafana_admin_password "$(random 24)"
echo "secrets in $(pwd)/secrets"
