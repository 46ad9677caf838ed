// One realistic operator flow through the hydrated admin UI, against the release server and
// the scripted fake upstream: group → Anthropic account → user and key (copied from the
// dialog) → a real gateway request → Usage and Dashboard → the upstream starts answering 401
// → the account shows its error → clear error. Screenshots of every page along the way.
const { test, expect } = require('@playwright/test');

const EMAIL = 'admin@e2e.test';
const PASSWORD = 'e2e-password-123';
const FAKE_URL = process.env.E2E_FAKE_URL;
const FAKE_CONTROL_URL = process.env.E2E_FAKE_CONTROL_URL;
const UPSTREAM_KEY = 'sk-ant-e2e-flow';

const shot = (page, name) => page.screenshot({ path: `test-results/screenshots/flow-${name}.png`, fullPage: true });

async function signIn(page) {
  await page.goto('/login');
  await expect(page.locator('body[data-hydrated]')).toBeAttached();
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/$/);
}

// Client-side navigation through the sidebar, then wait for the page to be interactive.
async function open(page, label, title = label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
}

// The numeric id from the data-testid of the row that shows `text` (rows are `<prefix>-<id>`).
async function rowId(page, prefix, text) {
  const row = page.locator(`[data-testid^="${prefix}-"]`).filter({ hasText: text }).first();
  await expect(row).toBeVisible();
  const id = (await row.getAttribute('data-testid')).slice(prefix.length + 1);
  expect(id).toMatch(/^\d+$/);
  return id;
}

async function statValue(page, id) {
  return (await page.getByTestId(id).locator('.stat-value').textContent()).trim();
}

test('operator flow: group, account, user, key, request, usage, error, recovery', async ({ page, context, request }) => {
  expect(FAKE_URL, 'playwright.config.js starts the fake upstream').toBeTruthy();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page);
  const requestsBefore = Number(await statValue(page, 'stat-today-requests'));

  // A group.
  await open(page, 'Groups');
  await page.getByTestId('new-group').click();
  await page.getByTestId('group-name').fill('e2e-claude');
  await page.getByTestId('group-platform').selectOption('anthropic');
  await page.getByTestId('group-submit').click();
  await expect(page.getByTestId('toast-ok').first()).toBeVisible();
  const groupId = await rowId(page, 'group-row', 'e2e-claude');
  await shot(page, 'groups');

  // An Anthropic API-key account pointed at the fake upstream, in that group.
  await open(page, 'Accounts');
  await page.getByTestId('new-account').click();
  await page.getByTestId('kind-anthropic-apikey').click();
  await expect(page.getByTestId('account-platform')).toHaveValue('anthropic');
  await expect(page.getByTestId('account-type')).toHaveValue('apikey');
  await page.getByTestId('account-name').fill('e2e-account');
  await page.getByTestId('account-api-key').fill(UPSTREAM_KEY);
  await page.getByTestId('account-base-url').fill(FAKE_URL);
  await page.getByTestId(`group-option-${groupId}`).check();
  await page.getByTestId('account-save').click();
  const accountId = await rowId(page, 'account-row', 'e2e-account');
  await expect(page.getByTestId(`account-status-${accountId}`)).toHaveText('active');
  await shot(page, 'accounts');

  // A user, and a key for them in the group; the full key is copied from the dialog.
  await open(page, 'Users');
  await page.getByTestId('new-user').click();
  await page.getByTestId('user-email-input').fill('dev@e2e.test');
  await page.getByTestId('user-password').fill('dev-password-123');
  await page.getByTestId('user-submit').click();
  const userId = await rowId(page, 'user-row', 'dev@e2e.test');
  await shot(page, 'users');

  await open(page, 'API Keys');
  await page.getByTestId('new-key').click();
  await page.getByTestId('key-user').selectOption(userId);
  await page.getByTestId('key-name').fill('e2e-cli');
  await page.getByTestId('key-group').selectOption(groupId);
  await page.getByTestId('create-key-submit').click();
  await expect(page.getByTestId('created-key')).toBeVisible();
  await page.getByTestId('copy-created-key').click();
  const key = await page.evaluate(() => navigator.clipboard.readText());
  expect(key).toMatch(/^sk-[0-9a-f]{64}$/);
  expect(await page.getByTestId('created-key').textContent()).toContain(key);
  await expect(page.getByTestId('snippet-claude-code')).toContainText(`ANTHROPIC_AUTH_TOKEN="${key}"`);
  await shot(page, 'key-created');
  await page.getByTestId('created-key-done').click();

  // A request through the gateway with that key.
  const hello = { model: 'claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] };
  const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' };
  const ok = await request.post('/v1/messages', { headers, data: hello });
  expect(ok.status()).toBe(200);
  expect((await ok.json()).type).toBe('message');

  // The Usage page shows the row (the usage writer is asynchronous: reload until it lands).
  await open(page, 'Usage');
  await expect(async () => {
    await page.reload();
    await expect(page.locator('[data-testid^="usage-row-"]').filter({ hasText: 'claude-sonnet-4-5' }).first()).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await shot(page, 'usage');

  // The Dashboard counts it, refreshed without a page reload.
  await open(page, 'Dashboard');
  await page.getByTestId('refresh').click();
  await expect.poll(async () => Number(await statValue(page, 'stat-today-requests'))).toBe(requestsBefore + 1);
  await shot(page, 'dashboard');

  // The upstream now rejects the account's credential: the account goes to the error state.
  const scripted = await request.put(`${FAKE_CONTROL_URL}/credentials/${UPSTREAM_KEY}`, {
    data: { status: 401, message: 'invalid x-api-key' },
  });
  expect(scripted.status()).toBe(204);
  const failed = await request.post('/v1/messages', { headers, data: hello });
  expect(failed.status()).toBeGreaterThanOrEqual(400);

  await open(page, 'Accounts');
  const badge = page.getByTestId(`account-status-${accountId}`);
  await expect(badge).toHaveText('error');
  await expect(page.getByTestId(`account-row-${accountId}`)).toContainText('invalid x-api-key');
  await shot(page, 'account-error');

  // The upstream recovers; clearing the error puts the account back in service.
  await request.put(`${FAKE_CONTROL_URL}/credentials/${UPSTREAM_KEY}`, { data: { status: 200 } });
  await page.getByTestId(`clear-error-${accountId}`).click();
  await expect(badge).toHaveText('active');
  await expect(page.getByTestId('toast-ok').first()).toBeVisible();
  const again = await request.post('/v1/messages', { headers, data: hello });
  expect(again.status()).toBe(200);

  // Every other page, for the record.
  for (const [label, title] of [['Models', 'Models'], ['Proxies', 'Proxies'], ['Settings', 'Settings']]) {
    await open(page, label, title);
    await shot(page, label.toLowerCase());
  }
});
