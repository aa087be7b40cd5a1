-- Refresh reuse grace (REFRESH_REUSE_GRACE_SECONDS): a spent refresh token presented again
-- within the grace gets the same successor pair back. The pair is kept on the spent row only
-- encrypted (AES-256-GCM envelope of the encryption service, AAD bound to tenant, session and
-- token id) — never plaintext — and cleared once the grace is over.
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed text CHECK (successor_sealed IS NULL OR length(successor_sealed) <= 8192);
