// Signs a webhook request the way a sender does, with the sender's own library where it has one:
// reads {"library", "secret", "body", "id", "timestamp", "privateKey"} as JSON from standard input
// and writes {"headers": {...}} (or, for "ed25519-keygen", a key pair). Used by
// tests/tests/engine/senders.rs; the libraries are pinned by package-lock.json.
'use strict';

const crypto = require('crypto');

async function sign(request) {
  const { library, secret, body, id, timestamp } = request;
  switch (library) {
    case 'stripe': {
      const stripe = require('stripe')('sk_test_unused');
      const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
      return { 'Stripe-Signature': header };
    }
    case 'svix': {
      const { Webhook } = require('svix');
      const signature = new Webhook(secret).sign(id, new Date(timestamp * 1000), body);
      return { 'svix-id': id, 'svix-timestamp': String(timestamp), 'svix-signature': signature };
    }
    case 'standardwebhooks': {
      const { Webhook } = require('standardwebhooks');
      const signature = new Webhook(secret).sign(id, new Date(timestamp * 1000), body);
      return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
    }
    case 'standardwebhooks-v1a': {
      // The v1a scheme: ed25519 over id.timestamp.body (no library of its own signs it).
      const key = crypto.createPrivateKey(request.privateKey);
      const signature = crypto.sign(null, Buffer.from(`${id}.${timestamp}.${body}`), key).toString('base64');
      return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1a,${signature}` };
    }
    case 'octokit': {
      const { sign } = await import('@octokit/webhooks-methods');
      return { 'X-Hub-Signature-256': await sign(secret, body), 'X-GitHub-Delivery': id };
    }
    case 'shopify': {
      // Shopify's documented scheme (its libraries verify, none signs): base64 HMAC-SHA256 of the body.
      const signature = crypto.createHmac('sha256', secret).update(body).digest('base64');
      return { 'X-Shopify-Hmac-Sha256': signature, 'X-Shopify-Webhook-Id': id };
    }
    case 'meta': {
      // Meta's documented scheme: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app secret>.
      const signature = crypto.createHmac('sha256', secret).update(body).digest('hex');
      return { 'X-Hub-Signature-256': `sha256=${signature}` };
    }
    case 'x': {
      // X's documented scheme: X-Twitter-Webhooks-Signature: sha256=<base64 HMAC-SHA256 of the body>.
      const signature = crypto.createHmac('sha256', secret).update(body).digest('base64');
      return { 'X-Twitter-Webhooks-Signature': `sha256=${signature}` };
    }
    case 'zoom': {
      // Zoom's documented scheme (no library signs): v0=<hex HMAC-SHA256 of v0:<timestamp>:<body>>.
      const signature = crypto.createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex');
      return { 'x-zm-request-timestamp': String(timestamp), 'x-zm-signature': `v0=${signature}` };
    }
    default:
      throw new Error(`unknown library ${library}`);
  }
}

function keypair() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'jwk' }).x;
  return {
    publicKey: `whpk_${Buffer.from(raw, 'base64url').toString('base64')}`,
    privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }),
  };
}

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const request = JSON.parse(input);
  const answer = request.library === 'ed25519-keygen' ? keypair() : { headers: await sign(request) };
  process.stdout.write(JSON.stringify(answer));
});
