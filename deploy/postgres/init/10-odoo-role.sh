#!/bin/bash
# Runs once, when the PostgreSQL volume is created: the role Odoo connects as. Odoo refuses to run
# as a superuser, and creates its database itself, so the role gets CREATEDB and nothing more.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
  -v role="${ODOO_DB_USER}" -v password="${ODOO_DB_PASSWORD}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SQL
