#!/usr/bin/env node
// tests/cm-httpd.bats: Segment's own Node SDK (@segment/analytics-node, from
// npm, test-only) sends to cm-httpd as it would to Segment.
//
//   node segment-send.js HOST WRITE_KEY N PREFIX
//
// sends N track calls ("Order Completed"), N identify calls and one page
// call for users PREFIX-0 .. PREFIX-(N-1) through the SDK's batching
// (flushAt 7, so several batches), waits for closeAndFlush, and prints one
// line per message the SDK sent, {"type","messageId","userId"}, taken from
// the request bodies the SDK emitted (a retried batch counts once). It
// exits 1 when the SDK reports any event it could not deliver, and prints
// each HTTP status it got on stderr as "status N".
'use strict'

const { Analytics } = require('@segment/analytics-node')

const [host, writeKey, count, prefix] = process.argv.slice(2)
const n = Number(count)
if (!host || !writeKey || !Number.isInteger(n) || n < 1 || !prefix) {
  process.stderr.write('usage: segment-send.js HOST WRITE_KEY N PREFIX\n')
  process.exit(2)
}

const analytics = new Analytics({
  writeKey,
  host,
  path: '/v1/batch',
  flushAt: 7,
  flushInterval: 100,
  maxRetries: 10,
  httpRequestTimeout: 5000,
})

const sent = new Map()
let failed = 0
analytics.on('http_request', (req) => {
  for (const m of JSON.parse(req.body).batch) {
    sent.set(m.messageId, { type: m.type, messageId: m.messageId, userId: m.userId })
  }
})
analytics.on('http_response', (res) => {
  process.stderr.write(`status ${res.status}\n`)
})
analytics.on('error', (err) => {
  failed++
  process.stderr.write(`error: ${err.code} ${err.reason}\n`)
})

for (let i = 0; i < n; i++) {
  const userId = `${prefix}-${i}`
  analytics.track({ userId, event: 'Order Completed', properties: { order: i, total: 10.5 * i } })
  analytics.identify({ userId, traits: { plan: i % 2 ? 'pro' : 'free', seq: i } })
}
analytics.page({ userId: `${prefix}-0`, name: 'Home', properties: { url: '/' } })

analytics.closeAndFlush({ timeout: 60000 }).then(() => {
  for (const m of sent.values()) process.stdout.write(JSON.stringify(m) + '\n')
  process.exit(failed ? 1 : 0)
})
