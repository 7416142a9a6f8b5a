#!/bin/bash
# One-shot Odoo initialisation for deploy/docker-compose.yml (service odoo-init).
#
# First run: creates the database $ODOO_DB and installs creativeflow_credits (-i), with the demo
# tiers and accounts when ODOO_LOAD_DEMO=true. Later runs: upgrades the addon (-u), which applies
# a new version of its views, security and data. Then makes sure the orchestrator's technical user
# exists, belongs to "CreativeFlow Credits / Orchestrator" only (besides Internal User), and has
# the password the orchestrator is configured with (ODOO_PASSWORD). In production give that user
# an API key instead (docs/odoo-admin.md) and set ODOO_API_KEY.
set -euo pipefail

DB_ARGS=(--db_host="${HOST}" --db_port="${PORT:-5432}" --db_user="${USER}" --db_password="${PASSWORD}")
export PGHOST="${HOST}" PGPORT="${PORT:-5432}" PGUSER="${USER}" PGPASSWORD="${PASSWORD}"

for _ in $(seq 1 60); do
  pg_isready -q -d postgres && break
  sleep 1
done

state=$(psql -d "${ODOO_DB}" -tAc \
  "SELECT state FROM ir_module_module WHERE name = 'creativeflow_credits'" 2>/dev/null || true)

if [ "${state}" = "installed" ]; then
  echo "creativeflow_credits is installed in ${ODOO_DB}: upgrading it"
  odoo "${DB_ARGS[@]}" --database="${ODOO_DB}" -u creativeflow_credits --stop-after-init --no-http
else
  demo=()
  if [ "${ODOO_LOAD_DEMO:-true}" != "true" ]; then
    demo=(--without-demo=all)
  fi
  echo "installing creativeflow_credits in ${ODOO_DB}"
  odoo "${DB_ARGS[@]}" --database="${ODOO_DB}" -i creativeflow_credits "${demo[@]}" \
    --stop-after-init --no-http
fi

odoo shell "${DB_ARGS[@]}" --database="${ODOO_DB}" --no-http <<'PY'
import os

login = os.environ["ODOO_ORCHESTRATOR_LOGIN"]
groups = [env.ref("base.group_user").id, env.ref("creativeflow_credits.group_orchestrator").id]
users = env["res.users"].sudo().with_context(active_test=False)
user = users.search([("login", "=", login)], limit=1)
if not user:
    user = users.create({"name": "CreativeFlow Orchestrator", "login": login})
user.write({"active": True, "groups_id": [(6, 0, groups)]})
user.password = os.environ["ODOO_ORCHESTRATOR_PASSWORD"]
env.cr.commit()
print(f"orchestrator user {login!r} ready (id {user.id})")
PY
