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
