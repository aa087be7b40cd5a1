-- CONTRACT §9: platform admins are admins of the platform tenant, by default `_platform`
-- (`npm run user:add -- --tenant _platform --role admin`). Real tenant ids still cannot start
-- with '_' (the server's own '_unknown' and '_system' trails stay user-free); `_platform` is
-- the one reserved name users may be provisioned in.
ALTER TABLE users DROP CONSTRAINT users_tenant_id_check;
ALTER TABLE users ADD CONSTRAINT users_tenant_id_check
  CHECK (tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' OR tenant_id = '_platform');
