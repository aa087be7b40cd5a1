-- SIEM outbox claims are short leases now (30 s, renewed by the delivering worker while a
-- batch is in flight), so a dead instance's claims run out within one lease. Every worker
-- checks each second whether some claim ran out; this partial index holds only claimed rows
-- (a few batches per instance), so that check costs an index probe however long the queue is.
CREATE INDEX siem_outbox_claimed_until_idx ON siem_outbox (claimed_until) WHERE claimed_until IS NOT NULL;
