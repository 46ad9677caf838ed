-- Subscription usage windows an account's upstream reported (Anthropic 5-hour / 7-day,
-- Codex primary / secondary): a JSON array, shown on the Accounts page.
ALTER TABLE accounts ADD COLUMN usage_windows TEXT NOT NULL DEFAULT '[]';
