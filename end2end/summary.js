// Prints Playwright's outcome as one plain "N passed, N failed" line for CI logs.
const fs = require('fs');
const file = process.argv[2] || 'test-results/results.json';
const stats = JSON.parse(fs.readFileSync(file, 'utf8')).stats || {};
const failed = (stats.unexpected || 0) + (stats.flaky || 0);
console.log(`playwright: ${stats.expected || 0} passed, ${failed} failed, ${stats.skipped || 0} skipped`);
process.exit(failed > 0 ? 1 : 0);
