-- Outbox rows are done when their job's effect is recorded, not when Redis accepted the message.
-- A broker can lose what it acknowledged (kill -9 before the AOF fsync, a failover to a replica
-- behind the primary); a row sent but not done by `resend_at` is sent again (jobs are idempotent).
--   done_at    the job finished (succeeded, or failed for good and went to the dead letters)
--   resend_at  when a sent-but-not-done row counts as lost; pushed forward while the job runs
--              or waits for a retry
--   sends      how often the relay handed the row to the broker (1 normally; more after a loss)
ALTER TABLE outbox
    ADD COLUMN done_at   timestamptz,
    ADD COLUMN resend_at timestamptz,
    ADD COLUMN sends     integer NOT NULL DEFAULT 0;

-- Rows relayed before this migration were considered finished by the old rule; keep them so.
UPDATE outbox SET done_at = sent_at, sends = 1 WHERE sent_at IS NOT NULL;

-- The relay's second look: sent, not done, overdue.
CREATE INDEX outbox_in_flight ON outbox (resend_at) WHERE done_at IS NULL AND sent_at IS NOT NULL;
