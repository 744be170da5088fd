// The client: openapi-fetch over the generated `paths` (so every path, parameter and body
// is typed from the public port's OpenAPI document), with the retrying fetch of
// `retry.js` underneath, answers unwrapped into data or a thrown `GatewayError`, a
// cursor-pagination iterator, and a job follower over Server-Sent Events.

import createClient from "openapi-fetch";

import { GatewayError, StreamInterrupted } from "./errors.js";
import { retryingFetch, sleep } from "./retry.js";
import { SseParser, lines } from "./sse.js";

/** Job states and the events that end a job's stream. */
export const TERMINAL_STATES = new Set(["completed", "partially_failed", "failed", "cancelled", "expired"]);
export const TERMINAL_EVENTS = new Set([...TERMINAL_STATES].map((state) => `job.${state}`));

const MAX_RECONNECT_DELAY_MS = 30_000;

/**
 * @typedef {import("./index.js").GatewayClientOptions} GatewayClientOptions
 * @typedef {import("./index.js").FollowEvent} FollowEvent
 */

/**
 * A client of the gateway's public port.
 * @param {GatewayClientOptions} options
 */
export function createGatewayClient(options) {
  const { baseUrl, apiKey, token, retry, onRetry, fetch: send = globalThis.fetch, headers } = options;
  if (apiKey && token) throw new TypeError("give apiKey or token, not both");
  const credentials = async () => {
    if (apiKey) return { "X-API-Key": apiKey };
    if (token) return { Authorization: `Bearer ${typeof token === "function" ? await token() : token}` };
    return /** @type {Record<string, string>} */ ({});
  };
  /** @type {import("openapi-fetch").Client<import("./schema.js").paths>} */
  const raw = createClient({
    baseUrl: baseUrl.replace(/\/+$/, ""),
    headers,
    fetch: retryingFetch({ fetch: send, credentials, retry, onRetry }),
  });

  /**
   * The answer's data, or the `GatewayError` it stands for.
   * @param {{data?: unknown, error?: unknown, response: Response}} result
   */
  function unwrap({ data, error, response }) {
    if (!response.ok) throw GatewayError.from(response.status, error, response.headers);
    return data;
  }

  // The typed signatures are index.d.ts's; at run time any path goes through.
  const untyped = /** @type {any} */ (raw);

  /** @param {"GET"|"POST"|"PUT"|"PATCH"|"DELETE"} method */
  const unwrapped = (method) =>
    /** @param {any} path @param {any} [init] */
    async (path, init) => unwrap(await untyped[method](path, init));

  /**
   * Every page of a cursor-paginated GET (the same query with `cursor=<next_cursor>`).
   * @param {any} path
   * @param {any} [init]
   */
  async function* pages(path, init = {}) {
    let cursor = init.params?.query?.cursor ?? undefined;
    for (;;) {
      const query = { ...init.params?.query, ...(cursor ? { cursor } : {}) };
      const page = /** @type {{items: unknown[], next_cursor?: string | null}} */ (
        unwrap(await untyped.GET(path, { ...init, params: { ...init.params, query } }))
      );
      yield page;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /**
   * Every item of a cursor-paginated GET, the next page fetched only when needed.
   * @param {any} path
   * @param {any} [init]
   */
  async function* paginate(path, init) {
    for await (const page of pages(path, init)) yield* page.items;
  }

  /**
   * A job's events until its terminal one: first a `snapshot` of the job (or, after a
   * reconnect, exactly the events missed, or a `resync` snapshot), then each event as it
   * happens. A dropped connection is resumed with `Last-Event-ID` after the server's
   * `retry:` hint (doubled per fruitless attempt in a row, at most 30 s); after
   * `maxReconnects` fruitless attempts in a row it throws `StreamInterrupted`.
   * @param {string} jobId
   * @param {{lastEventId?: string | null, maxReconnects?: number, signal?: AbortSignal}} [follow]
   * @returns {AsyncGenerator<FollowEvent>}
   */
  async function* followJob(jobId, { lastEventId = null, maxReconnects = 5, signal } = {}) {
    const parser = new SseParser();
    let last = lastEventId;
    let failures = 0;
    for (;;) {
      /** @type {unknown} */
      let cause;
      let received = false;
      try {
        /** @type {Record<string, string>} */
        const streamHeaders = { Accept: "text/event-stream", "Cache-Control": "no-store" };
        if (last !== null) streamHeaders["Last-Event-ID"] = last;
        const { response, error } = await raw.GET("/v1/jobs/{job_id}/events", {
          params: { path: { job_id: jobId } },
          headers: streamHeaders,
          parseAs: "stream",
          signal,
        });
        if (response.status === 204) return; // resumed after the terminal event: nothing more
        if (!response.ok) {
          const failure = GatewayError.from(response.status, error, response.headers);
          if (response.status !== 429 && response.status < 500) throw failure; // will not heal
          cause = failure;
        } else if (response.body) {
          parser.reset();
          for await (const line of lines(response.body)) {
            const message = parser.feed(line);
            if (message === null) continue;
            if (message.id !== null) last = message.id;
            received = true;
            failures = 0;
            const event = toEvent(message);
            if (event === null) continue; // `shutdown` (reconnect after its hint) or a new kind
            yield event;
            if (event.kind === "event" ? event.terminal : TERMINAL_STATES.has(event.job.state)) return;
          }
        }
      } catch (error) {
        if (error instanceof GatewayError && !(error.status === 429 || error.status >= 500)) throw error;
        if (signal?.aborted) throw error;
        cause = error;
      }
      if (!received) failures++;
      if (failures > maxReconnects) {
        throw new StreamInterrupted(`the stream of job ${jobId} could not be resumed`, last, cause);
      }
      const delayMs = Math.min(MAX_RECONNECT_DELAY_MS, (parser.retryMs ?? 1000) * 2 ** Math.max(0, failures - 1));
      onRetry?.({ method: "GET", url: `${baseUrl}/v1/jobs/${jobId}/events`, attempt: failures, delayS: delayMs / 1000, error: cause });
      await sleep(delayMs, signal);
    }
  }

  return {
    /** The underlying openapi-fetch client: `{data, error, response}`, nothing thrown. */
    raw,
    GET: unwrapped("GET"),
    POST: unwrapped("POST"),
    PUT: unwrapped("PUT"),
    PATCH: unwrapped("PATCH"),
    DELETE: unwrapped("DELETE"),
    pages,
    paginate,
    followJob,
  };
}

/**
 * The typed event of a message (null for `shutdown` and unknown kinds).
 * @param {import("./sse.js").SseMessage} message
 * @returns {FollowEvent | null}
 */
function toEvent(message) {
  if (message.event === "snapshot" || message.event === "resync") {
    const seq = message.id && /^\d+$/.test(message.id) ? Number(message.id) : 0;
    return { kind: message.event, seq, job: JSON.parse(message.data) };
  }
  if (message.event.startsWith("job.")) {
    const event = JSON.parse(message.data);
    return { kind: "event", ...event, terminal: TERMINAL_EVENTS.has(event.type) };
  }
  return null;
}
