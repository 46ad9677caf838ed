// Browser tests against a release build of sub2api started by Playwright itself, with a
// throw-away SQLite database. Uses Debian's chromium; Playwright downloads no browser.
const { defineConfig } = require('@playwright/test');
const fs = require('fs');
const os = require('os');
const path = require('path');

const port = process.env.E2E_PORT || '3900';
const root = path.resolve(__dirname, '..');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sub2api-e2e-'));
// An empty config file, so no config.yaml from the developer's machine is read.
const configFile = path.join(dataDir, 'config.yaml');
fs.writeFileSync(configFile, '');
const bin = process.env.SUB2API_BIN || path.join(root, 'target/release/sub2api');
// The scripted fake upstream the test's accounts point at, and its control port (the test
// makes it answer 401 for one credential).
const fakeBin = process.env.FAKE_UPSTREAM_BIN || path.join(root, 'target/release/fake-upstream');
const fakePort = process.env.E2E_FAKE_PORT || '3911';
const fakeControlPort = process.env.E2E_FAKE_CONTROL_PORT || '3912';
process.env.E2E_FAKE_URL = `http://127.0.0.1:${fakePort}`;
process.env.E2E_FAKE_CONTROL_URL = `http://127.0.0.1:${fakeControlPort}`;

module.exports = defineConfig({
  testDir: './tests',
  timeout: 60_000,
  workers: 1,
  retries: 0,
  reporter: [['list'], ['json', { outputFile: 'test-results/results.json' }]],
  outputDir: 'test-results/artifacts',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: [{
    command: `${fakeBin} --port ${fakePort} --control-port ${fakeControlPort}`,
    port: Number(fakePort),
    timeout: 30_000,
    reuseExistingServer: false,
    stdout: 'ignore',
    stderr: 'pipe',
  }, {
    command: `${bin} --config ${configFile}`,
    cwd: dataDir,
    url: `http://127.0.0.1:${port}/health`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    // Playwright merges these into the caller's environment: everything that could point the
    // server at a real database, Redis or key is set explicitly.
    env: {
      DATABASE_URL: `sqlite://${path.join(dataDir, 'sub2api.db')}`,
      REDIS_URL: '',
      SUB2API_ADMIN_API_KEY: '',
      SUB2API__SECURITY__ENCRYPTION_KEY: '',
      SUB2API__SECURITY__ENCRYPTION_KEY_FILE: path.join(dataDir, 'encryption.key'),
      HOST: '127.0.0.1',
      PORT: port,
      SUB2API__SERVER__SITE_ROOT: path.join(root, 'target/site'),
      SUB2API_ADMIN_EMAIL: 'admin@e2e.test',
      SUB2API_ADMIN_PASSWORD: 'e2e-password-123',
      // Claude sign-in goes to the fake upstream, which answers the token endpoint for any
      // code except `bad-code` (the test never opens the authorize page itself).
      SUB2API__OAUTH__CLAUDE__AUTHORIZE_URL: `${process.env.E2E_FAKE_URL}/oauth/authorize`,
      SUB2API__OAUTH__CLAUDE__TOKEN_URL: `${process.env.E2E_FAKE_URL}/v1/oauth/token`,
      PATH: process.env.PATH,
    },
  }],
});
