# Shared by scripts/dev and scripts/test: make sure PostgreSQL and RabbitMQ are up and the
# Python environment is installed. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[creativeflow] %s\n' "$*" >&2; }

ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  else
    log "PostgreSQL is not running and pg_ctlcluster is not available: start it, then retry"
    exit 1
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && return; sleep 1; done
  log "PostgreSQL did not become ready"; exit 1
}

rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

ensure_rabbitmq() {
  if rabbit_up; then return; fi
  log "starting RabbitMQ"
  if command -v rabbitmq-server >/dev/null 2>&1; then
    rabbitmq-server -detached
  else
    log "RabbitMQ is not running and rabbitmq-server is not available: start it, then retry"
    exit 1
  fi
  for _ in $(seq 1 90); do rabbit_up && return; sleep 1; done
  log "RabbitMQ did not become ready"; exit 1
}

ensure_python() {
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$python" -m venv .venv
  fi
  # reinstall when either pyproject.toml changed since the last install; the local stack
  # (devstack/) is a distribution of its own, which the production image leaves out
  local stamp=.venv/.creativeflow-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ devstack/pyproject.toml -nt "$stamp" ]; then
    log "installing the project, its local stack and its test tools"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]" -e ./devstack
    touch "$stamp"
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
}

ensure_postgres
ensure_rabbitmq
ensure_python
