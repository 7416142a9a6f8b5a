#!/bin/bash
# One-shot Odoo initialisation for deploy/docker-compose.yml (service odoo-init).
#
# First run: creates the database $ODOO_DB and installs creativeflow_credits (-i), with the demo
# tiers and accounts when ODOO_LOAD_DEMO=true. Later runs: upgrades the addon (-u), which applies
# a new version of its views, security and data. Then makes sure the orchestrator's technical user
# exists, belongs to "CreativeFlow Credits / Orchestrator" only (not Internal User), has no
# password, and has the API key the orchestrator is configured with (ODOO_API_KEY).
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

try:  # Odoo 18; Odoo 19 moved them beside the API key model
    from odoo.addons.base.models.res_users import INDEX_SIZE, KEY_CRYPT_CONTEXT
except ImportError:
    from odoo.addons.base.models.res_users_apikeys import INDEX_SIZE, KEY_CRYPT_CONTEXT

login = os.environ["ODOO_ORCHESTRATOR_LOGIN"]
key = os.environ["ODOO_ORCHESTRATOR_API_KEY"]
if len(key) < 2 * INDEX_SIZE:
    raise SystemExit(f"ODOO_API_KEY must be at least {2 * INDEX_SIZE} characters")
# the Orchestrator group alone: not an internal user, so it reads no one else's login, e-mail
# or contact details
groups = [env.ref("creativeflow_credits.group_orchestrator").id]
users = env["res.users"].sudo().with_context(active_test=False)
user = users.search([("login", "=", login)], limit=1)
if not user:  # created in the group alone: never an internal user, not even for a moment
    user = users.create(
        {"name": "CreativeFlow Orchestrator", "login": login, "groups_id": [(6, 0, groups)]}
    )
user.write({"active": True, "groups_id": [(6, 0, groups)]})
if user.has_group("base.group_user") or not user.share:
    raise SystemExit(f"{login!r} is still an internal user: check the groups implying it")
# no password: a login then checks the API key alone, not 600,000 pbkdf2 rounds first
env.cr.execute("UPDATE res_users SET password = NULL WHERE id = %s", [user.id])
# the configured key, stored as Odoo stores the keys it makes (hashed, with its index)
env.cr.execute(
    "DELETE FROM res_users_apikeys WHERE user_id = %s AND name = %s", [user.id, "orchestrator"]
)
env.cr.execute(
    "INSERT INTO res_users_apikeys (name, user_id, scope, key, index)"
    " VALUES (%s, %s, NULL, %s, %s)",
    ["orchestrator", user.id, KEY_CRYPT_CONTEXT.hash(key), key[:INDEX_SIZE]],
)
env.cr.commit()
print(f"orchestrator user {login!r} ready (id {user.id}), API key only")
PY
