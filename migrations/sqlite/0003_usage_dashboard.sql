-- Indexes for the dashboard and the Usage page.

-- The Usage page lists newest first (ORDER BY id DESC) under an equality filter. An index on
-- (column, id) hands the rows over already in that order; the (column, created_at) indexes
-- make the database sort every match before it can return the first page.
CREATE INDEX usage_logs_user_id ON usage_logs(user_id, id);
CREATE INDEX usage_logs_key_id ON usage_logs(api_key_id, id);
CREATE INDEX usage_logs_account_id ON usage_logs(account_id, id);
CREATE INDEX usage_logs_group_id ON usage_logs(group_id, id);

-- The newest failures (the dashboard's recent errors, the status=error filter) without
-- walking the successful majority. Queries must spell the predicate exactly like this.
CREATE INDEX usage_logs_errors ON usage_logs(id) WHERE status_code >= 400 OR error_message <> '';

-- The dashboard's per-day, per-model sums (`usage_by_day_and_model`) read only this index, in
-- group order: no row lookups and no sort. The query adds a predicate on the same day
-- expression so the planner can use it. (PostgreSQL hashes the groups and needs none.)
CREATE INDEX usage_logs_day_model ON usage_logs(
    substr(created_at, 1, 10), requested_model, created_at, input_tokens, output_tokens,
    cache_creation_tokens, cache_read_tokens, total_cost, actual_cost
);
