#!/bin/sh
# One-shot n8n setup for deploy/docker-compose.yml (service n8n-import), run before n8n starts:
#   1. the RabbitMQ credential the workflow's trigger uses (id cfRabbitMQ000001), written from the
#      environment with node so that any character in the password is escaped properly;
#   2. the workflow of the dispatch mode: docs/n8n/creativeflow-generation.json (id
#      cfGeneration0001) for DISPATCH_MODE=rabbitmq, creativeflow-generation-webhook.json (id
#      cfGenerationWh01) for webhook;
#   3. that workflow activated (activate:workflow on n8n 2.x, update:workflow on 1.x).
# Importing again replaces both (same ids), so it is safe on every `docker compose up`.
set -eu

credentials=/tmp/creativeflow-credentials.json
node -e '
const fs = require("fs");
const e = process.env;
fs.writeFileSync(process.argv[1], JSON.stringify([{
  id: "cfRabbitMQ000001",
  name: "CreativeFlow RabbitMQ",
  type: "rabbitmq",
  data: {
    hostname: e.CREATIVEFLOW_RABBITMQ_HOST,
    port: Number(e.CREATIVEFLOW_RABBITMQ_PORT || 5672),
    username: e.CREATIVEFLOW_RABBITMQ_USER,
    password: e.CREATIVEFLOW_RABBITMQ_PASSWORD,
    vhost: e.CREATIVEFLOW_RABBITMQ_VHOST || "/",
    ssl: false,
  },
}]), { mode: 0o600 });
' "$credentials"

n8n import:credentials --input="$credentials"
rm -f "$credentials"
if [ "${DISPATCH_MODE:-rabbitmq}" = "webhook" ]; then
  workflow=creativeflow-generation-webhook.json id=cfGenerationWh01
else
  workflow=creativeflow-generation.json id=cfGeneration0001
fi
n8n import:workflow --input="/creativeflow/workflows/${workflow}"
n8n activate:workflow --id="${id}" \
  || n8n update:workflow --id="${id}" --active=true
