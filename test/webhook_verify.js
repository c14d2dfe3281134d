// Verifies the requests logged by test/webhook_receiver.py with the official Standard Webhooks
// library for Node (npm package standardwebhooks), the way a receiver would:
//
//     NODE_PATH=/path/to/node_modules node test/webhook_verify.js LOG SECRETS
//
// Prints one JSON line {checked, verified, failures: [...]}; exits 2 when the package is
// missing (the TAP test then skips), 1 when a request does not verify.
let Webhook;
try {
    ({ Webhook } = require('standardwebhooks'));
} catch (e) {
    console.log(JSON.stringify({ missing: 'standardwebhooks' }));
    process.exit(2);
}
const fs = require('fs');
const [logFile, secretsFile] = process.argv.slice(2);
const secrets = JSON.parse(fs.readFileSync(secretsFile, 'utf8'));
const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.length > 0);
let checked = 0, verified = 0;
const failures = [];
for (const line of lines) {
    const r = JSON.parse(line);
    const headers = { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature };
    checked++;
    let ok = false, why = 'no secret';
    for (const s of secrets[r.name] || []) {
        try {
            const event = new Webhook(s).verify(r.body, headers);   // throws unless valid
            ok = String(event.id) === r.id;
            why = ok ? 'ok' : 'body id differs from webhook-id';
            if (ok) break;
        } catch (e) {
            why = e.message;
        }
    }
    if (ok) verified++; else failures.push({ name: r.name, id: r.id, why });
}
console.log(JSON.stringify({ checked, verified, failures }));
process.exit(failures.length ? 1 : 0);
