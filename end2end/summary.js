// Prints Playwright's outcome as one plain "N passed, N failed" line for CI logs.
const fs = require('fs');
const file = process.argv[2] || 'test-results/results.json';
// A run that could not start the server reports its tests as skipped plus a global error:
// that is a failure, as is a run that executed nothing.
let report = {};
try {
  report = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`playwright: no report at ${file} (${e.message})`);
  process.exit(1);
}
const stats = report.stats || {};
const errors = (report.errors || []).length;
const failed = (stats.unexpected || 0) + (stats.flaky || 0) + errors;
console.log(`playwright: ${stats.expected || 0} passed, ${failed} failed, ${stats.skipped || 0} skipped`);
for (const err of report.errors || []) console.log(`playwright error: ${err.message || JSON.stringify(err)}`);
process.exit(failed > 0 || !stats.expected ? 1 : 0);
