// The client's own behaviour against small local HTTP servers (node:http): what a real
// gateway cannot be made to do on demand (answer 429 then 200, drop a stream mid-job).
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { after, describe, it } from "node:test";

import { RateLimited, SseParser, StreamInterrupted, createGatewayClient, lines } from "../src/index.js";

/**
 * A local server answering with `handler`; its base URL and the requests it saw.
 * @param {(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse, n: number) => void} handler
 */
async function serve(handler) {
  /** @type {{method: string, url: string, headers: import("node:http").IncomingHttpHeaders, body: string}[]} */
  const seen = [];
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
    handler(req, res, seen.length);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${address.port}`, seen };
}

const problem = (res, status, headers = {}) => {
  res.writeHead(status, { "Content-Type": "application/problem+json", ...headers });
  res.end(JSON.stringify({ type: "https://gateway.taxlien.dev/problems/x", title: "T", status, detail: "d", instance: "/" }));
};
const json = (res, body) => {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
};
const fast = { backoffS: 0.001, backoffMaxS: 0.001 };

describe("retries", () => {
  it("retries a 429 after its Retry-After, with the same Idempotency-Key", async () => {
    const { url, seen } = await serve((req, res, n) =>
      n === 1 ? problem(res, 429, { "Retry-After": "0" }) : json(res, { id: "j1", state: "queued" }),
    );
    const notices = [];
    const gw = createGatewayClient({ baseUrl: url, apiKey: "tlk_k", onRetry: (n) => notices.push(n) });
    const job = await gw.POST("/v1/jobs", { body: { kind: "parcel_refresh", items: [] } });
    assert.equal(job.id, "j1");
    assert.equal(seen.length, 2);
    const [first, second] = seen.map((r) => r.headers["idempotency-key"]);
    assert.match(first ?? "", /^"[0-9a-f-]{36}"$/);
    assert.equal(second, first);
    assert.equal(seen[1].body, seen[0].body); // the body is sent again, unchanged
    assert.deepEqual(notices.map((n) => [n.status, n.delayS]), [[429, 0]]);
  });

  it("retries a 503 with no hint after a backoff, and gives up after maxRetries", async () => {
    const { url, seen } = await serve((req, res) => problem(res, 503));
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k", retry: { ...fast, maxRetries: 2 } });
    await assert.rejects(gw.GET("/v1/me"), { name: "ServiceUnavailable", status: 503 });
    assert.equal(seen.length, 3);
  });

  it("does not wait for a Retry-After over maxWaitS: the RateLimited error says how long", async () => {
    const { url, seen } = await serve((req, res) => problem(res, 429, { "Retry-After": "3600" }));
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k" });
    await assert.rejects(gw.GET("/v1/me"), (error) => error instanceof RateLimited && error.retryAfter === 3600);
    assert.equal(seen.length, 1);
  });

  it("waits for an exhausted RateLimit policy when there is no Retry-After", async () => {
    const { url, seen } = await serve((req, res, n) =>
      n === 1 ? problem(res, 429, { RateLimit: '"burst";r=0;t=0, "daily";r=5;t=900' }) : json(res, { ok: 1 }),
    );
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k" });
    assert.deepEqual(await gw.GET("/v1/me"), { ok: 1 });
    assert.equal(seen.length, 2);
  });

  it("does not retry other errors, nor keep a caller's own Idempotency-Key from being sent", async () => {
    const { url, seen } = await serve((req, res) => problem(res, 404));
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k" });
    await assert.rejects(
      gw.POST("/v1/jobs/{job_id}/cancel", { params: { path: { job_id: "x" } }, headers: { "Idempotency-Key": '"mine"' } }),
      { name: "NotFound" },
    );
    assert.equal(seen.length, 1);
    assert.equal(seen[0].headers["idempotency-key"], '"mine"');
  });
});

describe("credentials", () => {
  it("sends an API key as X-API-Key and a token (or a token function) as a bearer", async () => {
    const { url, seen } = await serve((req, res) => json(res, {}));
    await createGatewayClient({ baseUrl: url, apiKey: "tlk_a" }).GET("/v1/me");
    await createGatewayClient({ baseUrl: url, token: "id-token" }).GET("/v1/me");
    let n = 0;
    await createGatewayClient({ baseUrl: url, token: async () => `fresh-${++n}` }).GET("/v1/me");
    assert.equal(seen[0].headers["x-api-key"], "tlk_a");
    assert.equal(seen[0].headers.authorization, undefined);
    assert.equal(seen[1].headers.authorization, "Bearer id-token");
    assert.equal(seen[2].headers.authorization, "Bearer fresh-1");
    assert.equal(seen[0].method, "GET");
    assert.equal(seen[0].headers["idempotency-key"], undefined); // only POSTs get one
  });
});

describe("the job follower", () => {
  it("resumes a dropped stream with Last-Event-ID and stops at the terminal event", async () => {
    const job = { id: "j1", state: "running" };
    const event = (seq, type) =>
      `id: ${seq}\nevent: ${type}\ndata: ${JSON.stringify({ id: `e${seq}`, type, job_id: "j1", seq, data: {} })}\n\n`;
    const { url, seen } = await serve((req, res, n) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      if (n === 1) {
        res.write(`retry: 5\n: keep-alive\nid: 1\nevent: snapshot\ndata: ${JSON.stringify(job)}\n\n`);
        res.write(event(2, "job.progress"));
        res.write("id: 3\nevent: job.progress\ndata: {\"half"); // cut mid-event
        setImmediate(() => res.socket?.destroy());
      } else {
        res.end(`${event(3, "job.progress")}${event(4, "job.completed")}${event(5, "job.never-read")}`);
      }
    });
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k" });
    const got = [];
    for await (const e of gw.followJob("j1")) got.push(e);
    assert.deepEqual(got.map((e) => [e.kind, e.seq]), [["snapshot", 1], ["event", 2], ["event", 3], ["event", 4]]);
    assert.equal(got.at(-1).terminal, true);
    assert.equal(seen[0].headers["last-event-id"], undefined);
    assert.equal(seen[1].headers["last-event-id"], "2");
    assert.equal(seen[1].headers.accept, "text/event-stream");
  });

  it("throws StreamInterrupted after maxReconnects fruitless connections", async () => {
    const { url, seen } = await serve((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.end("retry: 1\n\n");
    });
    const gw = createGatewayClient({ baseUrl: url, apiKey: "k" });
    await assert.rejects(async () => {
      for await (const e of gw.followJob("j1", { maxReconnects: 2, lastEventId: "7" })) assert.fail(String(e));
    }, (error) => error instanceof StreamInterrupted && error.lastEventId === "7");
    assert.equal(seen.length, 3);
  });

  it("ends at once when the server answers a resume with 204", async () => {
    const { url } = await serve((req, res) => {
      res.writeHead(204);
      res.end();
    });
    const got = [];
    for await (const e of createGatewayClient({ baseUrl: url, apiKey: "k" }).followJob("j1", { lastEventId: "9" })) got.push(e);
    assert.deepEqual(got, []);
  });
});

describe("the SSE parser", () => {
  it("joins data lines, keeps the last id, reads retry, skips comments", () => {
    const parser = new SseParser();
    const out = [": hi", "retry: 250", "id: 4", "event: job.x", "data: a", "data:b", ""].map((l) => parser.feed(l));
    assert.deepEqual(out.at(-1), { event: "job.x", data: "a\nb", id: "4" });
    assert.equal(parser.retryMs, 250);
    assert.equal(parser.feed(""), null); // a blank line with no data dispatches nothing
  });

  it("splits CRLF, LF and CR line endings, also across chunks", async () => {
    const chunks = ["a\r", "\nb\n", "c\rd", "\r\n"].map((s) => new TextEncoder().encode(s));
    const body = new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const got = [];
    for await (const line of lines(body)) got.push(line);
    assert.deepEqual(got, ["a", "b", "c", "d"]);
  });
});
