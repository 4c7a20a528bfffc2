-- The two database users of data.yaml, created once by the RDS master user
-- (bin/bootstrap --phase database-users). psql reads the passwords from the environment
-- (OWNER_PASSWORD, APP_PASSWORD: the generated values in the statuspage-ENV-database-owner and
-- statuspage-ENV-database secrets), never from its command line.
--   statuspage      owns the schema: the migration Job creates and alters tables as it.
--   statuspage_app  reads and writes rows and uses sequences; no DDL, no ownership.
-- Secrets Manager's multi-user rotation later creates statuspage_clone and statuspage_app_clone
-- with the same grants and alternates between each user and its clone.
\set ON_ERROR_STOP on
\getenv owner_password OWNER_PASSWORD
\getenv app_password APP_PASSWORD
SELECT format('CREATE ROLE statuspage LOGIN PASSWORD %L', :'owner_password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'statuspage') \gexec
SELECT format('CREATE ROLE statuspage_app LOGIN PASSWORD %L', :'app_password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'statuspage_app') \gexec
-- The master user must be a member to hand over ownership (RDS's master is no superuser).
GRANT statuspage TO CURRENT_USER;
ALTER DATABASE statuspage OWNER TO statuspage;
ALTER SCHEMA public OWNER TO statuspage;
REVOKE ALL ON DATABASE statuspage FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE statuspage TO statuspage_app;
GRANT USAGE ON SCHEMA public TO statuspage_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO statuspage_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO statuspage_app;
-- Tables and sequences the migrations create later (as statuspage) get the same grants.
ALTER DEFAULT PRIVILEGES FOR ROLE statuspage IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO statuspage_app;
ALTER DEFAULT PRIVILEGES FOR ROLE statuspage IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO statuspage_app;
