#!/bin/sh
# The application role of the compose stack (Postgres runs this once, on an empty data
# directory). Migrations run as the owner ("medflow"); the API and the collector connect as
# medflow_app, which gets data rights on what the owner creates, never ownership or DDL. The
# migrations narrow it further where they must (the audit chain: INSERT and SELECT only).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
CREATE ROLE medflow_app LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE medflow TO medflow_app;
GRANT USAGE ON SCHEMA public TO medflow_app;
ALTER DEFAULT PRIVILEGES FOR ROLE medflow IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO medflow_app;
ALTER DEFAULT PRIVILEGES FOR ROLE medflow IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO medflow_app;
SQL
