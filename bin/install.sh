#!/usr/bin/env bash
# Installs gaas into PREFIX (default /opt/gaas): the code and its .venv, a system user, the data
# folder, an environment file with a generated secret (an existing one is never overwritten), and
# the systemd units, enabled and started where systemd runs. Safe to run again (upgrades).
# Overrides: GAAS_ENV_FILE, GAAS_DATA_DIR, GAAS_SERVICE_USER, GAAS_UNIT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(realpath -m "${1:-/opt/gaas}")"
env_file="${GAAS_ENV_FILE:-/etc/gaas/gaas.env}"
data_dir="$(realpath -m "${GAAS_DATA_DIR:-/var/lib/gaas}")"
user="${GAAS_SERVICE_USER:-gaas}"
unit_dir="${GAAS_UNIT_DIR:-/etc/systemd/system}"

echo "installing gaas into $prefix"
mkdir -p "$prefix"
tar --exclude=./.git --exclude=./.venv --exclude=./var --exclude='*/__pycache__' \
    --exclude=./tests/.venvs -cf - . | tar -xf - -C "$prefix"
# The service user must be able to run the interpreter: prefer the system's (a pyenv Python
# under /root is unreadable to it).
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then
    export PYTHON=/usr/bin/python3
fi
GAAS_SKIP_INIT=1 "$prefix/bin/setup.sh"

if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
    echo "created system user $user"
fi
install -d -o "$user" -g "$user" -m 750 "$data_dir"

if [ -e "$env_file" ]; then
    echo "kept $env_file"
else
    install -d "$(dirname "$env_file")"
    secret="$("$prefix/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(32))')"
    sed -e "s|^GEMSEO_HTTP_ROOT_PATH=.*|GEMSEO_HTTP_ROOT_PATH=$data_dir|" \
        -e "s|^GEMSEO_HTTP_SECRET_KEY=.*|GEMSEO_HTTP_SECRET_KEY=$secret|" \
        gaas.env.example > "$env_file.new"
    chmod 640 "$env_file.new"
    chgrp "$user" "$env_file.new"
    mv "$env_file.new" "$env_file"
    echo "wrote $env_file (with a new secret key)"
fi

# Folders and schema, as the service user, with the settings of the environment file.
runuser -u "$user" -- bash -c 'set -a; . "$1"; set +a; exec "$2/.venv/bin/python" "$2/admin.py" init' \
    _ "$env_file" "$prefix"

# The units as shipped name /opt/gaas, /etc/gaas/gaas.env, /var/lib/gaas and the gaas user.
for unit in gaas-server.service gaas-worker.service; do
    sed -e "s|/opt/gaas|$prefix|g" -e "s|/etc/gaas/gaas.env|$env_file|g" \
        -e "s|/var/lib/gaas|$data_dir|g" -e "s|^User=gaas|User=$user|" -e "s|^Group=gaas|Group=$user|" \
        "systemd/$unit" > "$prefix/systemd/$unit"
done

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    install -m 644 "$prefix/systemd/gaas-server.service" "$prefix/systemd/gaas-worker.service" "$unit_dir/"
    systemctl daemon-reload
    systemctl enable --now gaas-server.service gaas-worker.service
    echo "gaas-server and gaas-worker are enabled and started"
else
    cat <<TEXT
systemd is not running here; to run gaas:
  - with systemd elsewhere: copy $prefix/systemd/gaas-*.service to $unit_dir/, then
    systemctl daemon-reload && systemctl enable --now gaas-server gaas-worker
  - by hand, as $user: set -a; . $env_file; set +a; $prefix/bin/run_server.sh & $prefix/bin/run_worker.sh
TEXT
fi
echo "add a user: runuser -u $user -- env GAAS_ENV_FILE=$env_file $prefix/bin/gaas-admin create-user NAME"
