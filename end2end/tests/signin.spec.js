// Adding a Claude subscription account through the Add account wizard, against the fake
// upstream playing Claude's OAuth provider: choose the kind, settings, start the sign-in, read
// the state from the authorize link, a refused code (kept, with the server's reason), the
// right code, the new row with its token expiry, Refresh token, and an edit that keeps the
// grant. Screenshots of each step.
const { test, expect } = require('@playwright/test');

const EMAIL = 'admin@e2e.test';
const PASSWORD = 'e2e-password-123';
const FAKE_URL = process.env.E2E_FAKE_URL;

const shot = (page, name) => page.screenshot({ path: `test-results/screenshots/signin-${name}.png`, fullPage: true });

async function signIn(page) {
  await page.goto('/login');
  await expect(page.locator('body[data-hydrated]')).toBeAttached();
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/$/);
}

async function open(page, label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: label })).toBeVisible();
}

async function rowId(page, prefix, text) {
  const row = page.locator(`[data-testid^="${prefix}-"]`).filter({ hasText: text }).first();
  await expect(row).toBeVisible();
  const id = (await row.getAttribute('data-testid')).slice(prefix.length + 1);
  expect(id).toMatch(/^\d+$/);
  return id;
}

test('Claude OAuth account through the Add account wizard, then Refresh token', async ({ page, context }) => {
  expect(FAKE_URL, 'playwright.config.js starts the fake upstream').toBeTruthy();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page);

  await open(page, 'Groups');
  await page.getByTestId('new-group').click();
  await page.getByTestId('group-name').fill('e2e-claude-max');
  await page.getByTestId('group-platform').selectOption('anthropic');
  await page.getByTestId('group-submit').click();
  const groupId = await rowId(page, 'group-row', 'e2e-claude-max');

  await open(page, 'Accounts');
  const dialog = page.getByTestId('account-dialog');

  // The wizard starts with the kind; Escape closes it from there.
  await page.getByTestId('new-account').click();
  await expect(page.getByTestId('kind-picker')).toBeVisible();
  await expect(page.getByTestId('kind-anthropic-apikey')).toBeFocused();
  await shot(page, 'kinds');
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();

  // Step 1: the settings, with the groups of the kind's platform only.
  await page.getByTestId('new-account').click();
  await page.getByTestId('kind-claude-oauth').click();
  await expect(page.getByTestId('wizard-kind')).toHaveText('Claude OAuth (Pro/Max)');
  await expect(page.getByTestId('sign-in-name')).toBeFocused();
  // A name is needed before anything is sent.
  await page.getByTestId('sign-in-start').click();
  await expect(page.getByTestId('field-error-name')).toBeVisible();
  await page.getByLabel('Name').fill('e2e-max');
  await page.getByLabel('Priority').fill('7');
  await page.getByTestId(`group-option-${groupId}`).check();
  await shot(page, 'settings');
  await page.getByTestId('sign-in-start').click();

  // Step 2: the authorize link opens in a new tab; its state goes back with the code.
  const link = page.getByTestId('sign-in-url');
  await expect(link).toBeVisible();
  await expect(link).toHaveAttribute('target', '_blank');
  const href = await link.getAttribute('href');
  const authUrl = new URL(href);
  expect(`${authUrl.origin}${authUrl.pathname}`).toBe(`${FAKE_URL}/oauth/authorize`);
  expect(authUrl.searchParams.get('code_challenge_method')).toBe('S256');
  const state = authUrl.searchParams.get('state');
  expect(state).toBeTruthy();
  await expect(page.getByTestId('sign-in-expires')).toContainText(/expires at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  await expect(page.getByTestId('sign-in-code')).toBeFocused();
  await shot(page, 'authorize');
  await page.getByTestId('copy-sign-in-url').click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(href);
  // Copying is not submitting: no code was asked for yet.
  await expect(page.getByTestId('field-error-code')).toHaveCount(0);

  // A code the provider refuses: the dialog stays, with what was typed and the reason.
  const codeBox = page.getByLabel('Paste the code (or the whole callback address)');
  await codeBox.fill(`bad-code#${state}`);
  await page.getByTestId('sign-in-finish').click();
  await expect(page.getByTestId('field-error-code')).toContainText('invalid_grant');
  await expect(codeBox).toHaveValue(`bad-code#${state}`);
  await expect(page.getByLabel('Name')).toHaveValue('e2e-max');
  await shot(page, 'refused');

  // The code the provider accepts: the wizard closes and the list shows the account.
  await codeBox.fill(`somecode#${state}`);
  // Nothing covers the button (a refusal is not toasted over the dialog).
  await page.getByTestId('sign-in-finish').click({ timeout: 3000 });
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId('toast-ok').filter({ hasText: 'Added account e2e-max' })).toBeVisible();
  const id = await rowId(page, 'account-row', 'e2e-max');
  await expect(page.getByTestId(`account-type-${id}`)).toHaveText('oauth');
  const token = page.getByTestId(`account-token-${id}`);
  await expect(token).toHaveText(/^token expires in [78] h$/);
  await expect(token).toHaveAttribute('title', /Access token expires \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  await expect(page.getByTestId(`account-status-${id}`)).toHaveText('active');
  await expect(page.getByTestId(`account-row-${id}`)).toContainText('e2e-claude-max');
  await shot(page, 'added');

  // Refresh token asks the provider for a new one.
  await page.getByTestId(`refresh-token-${id}`).click();
  await expect(page.getByTestId('toast-ok').filter({ hasText: 'e2e-max: token refreshed' })).toBeVisible();
  await expect(token).toHaveText(/^token expires in [78] h$/);
  await expect(token).toHaveAttribute('title', /last refreshed/);
  await shot(page, 'refreshed');

  // Editing a signed-in account changes its settings, never its credentials.
  await page.getByTestId(`edit-${id}`).click();
  await expect(page.getByTestId('account-type')).toHaveValue('oauth');
  await expect(page.getByTestId('account-api-key')).toHaveCount(0);
  await page.getByTestId('account-priority').fill('8');
  await page.getByTestId('account-save').click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId('toast-ok').filter({ hasText: 'Saved account e2e-max' })).toBeVisible();
  await expect(page.getByTestId(`account-row-${id}`)).toContainText('8');
  await expect(token).toHaveText(/^token expires in [78] h$/);
});
