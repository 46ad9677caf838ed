// The admin shell in a real browser: sign-in, server-rendered pages, hydration, the admin API
// key round trip, sign-out. Screenshots of every page land in test-results/screenshots.
const { test, expect } = require('@playwright/test');

const EMAIL = 'admin@e2e.test';
const PASSWORD = 'e2e-password-123';
const PAGES = [
  ['/', 'Dashboard'], ['/accounts', 'Accounts'], ['/groups', 'Groups'], ['/keys', 'API Keys'],
  ['/users', 'Users'], ['/models', 'Models'], ['/proxies', 'Proxies'], ['/usage', 'Usage'],
  ['/settings', 'Settings'],
];

async function signIn(page, next = '') {
  await page.goto(`/login${next}`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('signed-out visitors are sent to the sign-in page', async ({ page }) => {
  await page.goto('/settings');
  await expect(page).toHaveURL(/\/login\?next=\/settings$/);
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
});

test('a wrong password shows an error and keeps the visitor out', async ({ page }) => {
  await page.goto('/login');
  await expect(page.locator('body[data-hydrated]')).toBeAttached();
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toContainText('wrong email or password');
  await expect(page).toHaveURL(/\/login/);
});

test('sign in, read the dashboard, use hydrated controls, sign out', async ({ page, request }) => {
  await signIn(page);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
  await expect(page.getByTestId('who')).toHaveText(EMAIL);
  await expect(page.getByTestId('stat-users').locator('.stat-value')).toHaveText('1');
  await expect(page.getByTestId('stat-accounts').locator('.stat-value')).toHaveText('0');

  // Only a hydrated page reacts to this click: the counter is client-side state.
  await expect(page.locator('body[data-hydrated]')).toBeAttached();
  await page.getByTestId('refresh').click();
  await expect(page.getByTestId('refresh-count')).toHaveText('Refreshed 1 times');
  await expect(page.getByTestId('stat-users').locator('.stat-value')).toHaveText('1');

  for (const [path, title] of PAGES) {
    await page.goto(path);
    await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
    await page.screenshot({ path: `test-results/screenshots/${title.toLowerCase().replace(/ /g, '-')}.png`, fullPage: true });
  }

  // Generating the admin API key is a server function called from a click handler.
  await page.goto('/settings');
  await expect(page.locator('body[data-hydrated]')).toBeAttached();
  await page.getByTestId('generate-admin-key').click();
  // Replacing the key breaks automation using the old one: the page asks first.
  await expect(page.getByTestId('confirm-dialog')).toBeVisible();
  await page.getByTestId('confirm').click();
  const key = (await page.getByTestId('admin-api-key').textContent()).trim();
  expect(key).toMatch(/^admin-[0-9a-f]{64}$/);
  const res = await request.get('/api/v1/admin/dashboard/stats', { headers: { 'x-api-key': key } });
  expect(res.status()).toBe(200);
  const body = await res.json();
  expect(body.code).toBe(0);
  expect(body.data.total_users).toBe(1);

  // Client-side navigation through the sidebar keeps the session.
  await page.getByRole('link', { name: 'Accounts' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Accounts' })).toBeVisible();
  await expect(page.getByTestId('empty-row')).toBeVisible();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/');
  await expect(page).toHaveURL(/\/login\?next=\//);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('pages are readable from the server-rendered HTML', async ({ page }) => {
    await signIn(page, '?next=/settings');
    await expect(page).toHaveURL(/\/settings$/);
    await expect(page.getByRole('heading', { level: 1, name: 'Settings' })).toBeVisible();
    await page.goto('/');
    await expect(page.getByTestId('stat-users').locator('.stat-value')).toHaveText('1');
    await expect(page.locator('body[data-hydrated]')).toHaveCount(0);
    await page.screenshot({ path: 'test-results/screenshots/dashboard-no-js.png', fullPage: true });
  });
});
