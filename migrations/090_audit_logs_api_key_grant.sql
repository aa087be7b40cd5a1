-- Migration 051 replaced the application role's table-wide INSERT on audit_logs by a grant
-- per column; migration 072 (API keys) then added audit_logs.api_key_id without a column
-- grant, so every audit row written by the runtime login (a member of fleet_app only) was
-- refused with "permission denied for table audit_logs" (the INSERT names api_key_id).
-- The application may set it: it is the key a request authenticated with, like user_id.
GRANT INSERT (api_key_id) ON audit_logs TO fleet_app;
