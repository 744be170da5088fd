// The SDK against a real gateway: tests/clients/typescript/test_node_suite.py serves one
// (real Redis and PostgreSQL) and passes its public URL, an API key, the parcel port's
// URL and a worker token in the environment. The tests act as the worker themselves
// (lease a task, post its result), so a followed job really runs to its end.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { GatewayError, ValidationFailed, createGatewayClient } from "../src/index.js";

const env = process.env;
const configured = Boolean(env.GATEWAY_URL && env.GATEWAY_API_KEY);
const gw = configured ? createGatewayClient({ baseUrl: env.GATEWAY_URL ?? "", apiKey: env.GATEWAY_API_KEY }) : null;

/** Lease up to `limit` parcel tasks of platform alpha and report each one succeeded. */
async function work(limit) {
  const headers = { "X-Worker-Token": env.GATEWAY_WORKER_TOKEN ?? "", "Content-Type": "application/json" };
  const query = new URLSearchParams({ worker_id: "node-w1", platforms: "alpha", limit: String(limit), wait: "0" });
  const leased = await fetch(`${env.GATEWAY_PARCEL_URL}/internal/work?${query}`, { headers });
  assert.equal(leased.status, 200, await leased.clone().text());
  const { tasks } = await leased.json();
  if (tasks.length === 0) return 0;
  const results = tasks.map((task) => ({
    task_id: task.task_id,
    lease_id: task.lease_id,
    status: "succeeded",
    data: {
      parcel_id: task.key,
      state: "FL",
      county: "Miami-Dade",
      platform: "alpha",
      address: "1 Main St",
      owner_name: "Jane Doe",
      assessed_value: "125000.00",
      tax_amount_due: 1234.5,
      lien_status: "active",
      auction_date: "2027-03-01",
      source_url: `https://county.example/parcels/${task.key}`,
      scraped_at: new Date().toISOString(),
      extra: {},
    },
  }));
  const posted = await fetch(`${env.GATEWAY_PARCEL_URL}/internal/results`, {
    method: "POST",
    headers,
    body: JSON.stringify({ worker_id: "node-w1", results }),
  });
  assert.equal(posted.status, 200, await posted.text());
  return tasks.length;
}

/** @param {string} prefix @param {number} count */
const items = (prefix, count) =>
  Array.from({ length: count }, (_, n) => ({ platform: "alpha", parcel_id: `${prefix}-${n}` }));

describe("against a real gateway", { skip: configured ? false : "GATEWAY_URL/GATEWAY_API_KEY not set" }, () => {
  it("reads the caller's account", async () => {
    const me = await gw.GET("/v1/me");
    assert.equal(typeof me.tier.name, "string");
  });

  it("follows a job over SSE from its snapshot to its terminal event", async () => {
    const job = await gw.POST("/v1/jobs", { body: { kind: "parcel_refresh", items: items("ts-follow", 3) } });
    assert.equal(job.state, "queued");
    const events = gw.followJob(job.id);
    const first = (await events.next()).value;
    assert.equal(first.kind, "snapshot");
    assert.equal(first.job.id, job.id);
    const received = [];
    while ((await work(1)) > 0) received.push((await events.next()).value);
    for await (const event of events) received.push(event); // ends by itself
    assert.ok(received.every((event) => event.kind === "event"));
    const last = received.at(-1);
    assert.equal(last.type, "job.completed");
    assert.equal(last.terminal, true);
    assert.equal(last.data.progress.succeeded, 3);
    const seqs = received.map((event) => event.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b)); // in order...
    assert.equal(new Set(seqs).size, seqs.length); // ...and none twice
    assert.equal((await gw.GET("/v1/jobs/{job_id}", { params: { path: { job_id: job.id } } })).state, "completed");
  });

  it("resumes after the last event it saw, and a finished job's resume ends at once", async () => {
    const job = await gw.POST("/v1/jobs", { body: { kind: "parcel_refresh", items: items("ts-resume", 2) } });
    const events = gw.followJob(job.id);
    const snapshot = (await events.next()).value;
    assert.equal(snapshot.kind, "snapshot");
    await events.return(undefined); // the caller goes away...
    while ((await work(1)) > 0); // ...while the job runs to its end
    const missed = [];
    for await (const event of gw.followJob(job.id, { lastEventId: String(snapshot.seq) })) missed.push(event);
    assert.ok(missed.length >= 2, JSON.stringify(missed));
    assert.ok(missed.every((event) => event.kind === "event" && event.seq > snapshot.seq));
    assert.equal(missed.at(-1).type, "job.completed");
    const after = [];
    for await (const event of gw.followJob(job.id, { lastEventId: String(missed.at(-1).seq) })) after.push(event);
    assert.deepEqual(after, []);
  });

  it("paginates the caller's jobs with the cursor", async () => {
    const created = [];
    for (let n = 0; n < 3; n++) {
      created.push((await gw.POST("/v1/jobs", { body: { kind: "parcel_refresh", items: items(`ts-page-${n}`, 1) } })).id);
    }
    const pages = [];
    for await (const page of gw.pages("/v1/jobs", { params: { query: { limit: 1 } } })) pages.push(page);
    assert.ok(pages.length >= 3);
    assert.ok(pages.slice(0, -1).every((page) => page.items.length === 1 && page.next_cursor));
    const ids = [];
    for await (const listed of gw.paginate("/v1/jobs", { params: { query: { limit: 2 } } })) ids.push(listed.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of created) assert.ok(ids.includes(id), id);
    while ((await work(10)) > 0); // leave no task behind for the other tests
  });

  it("surfaces a 422 problem as a typed ValidationFailed", async () => {
    await assert.rejects(
      gw.POST("/v1/jobs", { body: { kind: "parcel_refresh", items: [] } }),
      (error) => {
        assert.ok(error instanceof ValidationFailed);
        assert.ok(error instanceof GatewayError);
        assert.equal(error.status, 422);
        assert.match(error.type ?? "", /^https:\/\/gateway\.taxlien\.dev\/problems\//);
        assert.ok(error.errors.length > 0, JSON.stringify(error.problem));
        assert.equal(typeof error.requestId, "string");
        return true;
      },
    );
  });

  it("refuses a wrong key with a typed 401", async () => {
    const stranger = createGatewayClient({ baseUrl: env.GATEWAY_URL ?? "", apiKey: "tlk_not-a-key" });
    await assert.rejects(stranger.GET("/v1/me"), { name: "Unauthorized", status: 401 });
  });
});
