-- Two logins (CONTRACT §7): the API runs as a runtime login that is a member of fleet_app
-- only and never migrates in production. At start-up it checks that the schema is current by
-- reading the migration ledger: fleet_app may read it, nothing more.
GRANT SELECT ON schema_migrations TO fleet_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM fleet_app;
