// The fetch every request of the client goes through: credentials, an automatic
// `Idempotency-Key` on POSTs, and bounded retries.
//
// Retried, at most `maxRetries` times per call:
// - 429 and 503 answers, after the `Retry-After` the gateway sent, else after the reset
//   time of an exhausted `RateLimit` policy, else an exponential backoff with full jitter;
// - 409 `idempotency-key-in-use` (the first attempt of this very call is still running);
// - network failures (fetch rejecting with a TypeError) for GET, HEAD, POST and PATCH:
//   every POST carries the call's `Idempotency-Key`, so the gateway replays the first
//   answer rather than acting twice. A DELETE is not repeated: it would answer 404.
// A server-requested wait over `maxWaitS` is not waited for (a daily quota's "after
// midnight UTC"): the answer is returned at once and becomes a `RateLimited` error.

import { parseRetryAfter } from "./errors.js";

/**
 * @typedef {object} RetryPolicy
 * @property {number} [maxRetries] retries per call (default 3)
 * @property {number} [maxWaitS] longest server-requested wait honoured, seconds (default 30)
 * @property {number} [backoffS] first backoff when the server gave no hint (default 0.5)
 * @property {number} [backoffMaxS] backoff cap (default 8)
 */

/**
 * @typedef {object} RetryNotice
 * @property {string} method
 * @property {string} url
 * @property {number} attempt the attempt that failed, from 1
 * @property {number} delayS
 * @property {number} [status]
 * @property {unknown} [error]
 */

const RETRIED_STATUSES = new Set([429, 503]);
const SAFE_TO_REPEAT = new Set(["GET", "HEAD", "POST", "PATCH"]);

/** A fresh `Idempotency-Key`: a Structured Field string, as the draft asks. */
export function newIdempotencyKey() {
  return `"${crypto.randomUUID()}"`;
}

/**
 * Seconds until an exhausted `RateLimit` policy (`"burst";r=0;t=3`) is back; null if none is.
 * @param {string | null} header
 * @returns {number | null}
 */
export function rateLimitWait(header) {
  if (!header) return null;
  let wait = null;
  for (const item of header.split(",")) {
    const r = /;\s*r=(\d+)/.exec(item);
    const t = /;\s*t=(\d+)/.exec(item);
    if (r && t && Number(r[1]) === 0) wait = Math.max(wait ?? 0, Number(t[1]));
  }
  return wait;
}

/**
 * @param {object} options
 * @param {typeof fetch} options.fetch the underlying fetch
 * @param {() => Promise<Record<string, string>>} options.credentials headers to add
 * @param {RetryPolicy} [options.retry]
 * @param {(notice: RetryNotice) => void} [options.onRetry]
 * @returns {(input: Request) => Promise<Response>}
 */
export function retryingFetch({ fetch: send, credentials, retry = {}, onRetry }) {
  const maxRetries = retry.maxRetries ?? 3;
  const maxWaitS = retry.maxWaitS ?? 30;
  const backoffS = retry.backoffS ?? 0.5;
  const backoffMaxS = retry.backoffMaxS ?? 8;
  /** @param {number} attempt */
  const backoff = (attempt) => Math.random() * Math.min(backoffMaxS, backoffS * 2 ** (attempt - 1));

  return async (request) => {
    const method = request.method.toUpperCase();
    for (const [name, value] of Object.entries(await credentials())) {
      if (!request.headers.has(name)) request.headers.set(name, value);
    }
    // Chosen once per call, so that every attempt of it is the same operation.
    if (method === "POST" && !request.headers.has("idempotency-key")) {
      request.headers.set("Idempotency-Key", newIdempotencyKey());
    }
    for (let attempt = 1; ; attempt++) {
      /** @type {number | null} */
      let delay = null;
      /** @type {Response | undefined} */
      let response;
      try {
        response = await send(request.clone());
      } catch (error) {
        // fetch rejects with a TypeError for network failures; an abort is the caller's.
        const retriable = error instanceof TypeError && SAFE_TO_REPEAT.has(method);
        if (!retriable || attempt > maxRetries || request.signal?.aborted) throw error;
        delay = backoff(attempt);
        onRetry?.({ method, url: request.url, attempt, delayS: delay, error });
      }
      if (response) {
        if (attempt > maxRetries) return response;
        delay = await delayAfter(response, attempt);
        if (delay === null || delay > maxWaitS) return response;
        await response.body?.cancel();
        onRetry?.({ method, url: request.url, attempt, delayS: delay, status: response.status });
      }
      await sleep(/** @type {number} */ (delay) * 1000, request.signal);
    }
  };

  /**
   * @param {Response} response
   * @param {number} attempt
   * @returns {Promise<number | null>}
   */
  async function delayAfter(response, attempt) {
    if (response.status === 409) {
      const text = await response.clone().text();
      if (!text.includes("idempotency-key-in-use")) return null;
    } else if (!RETRIED_STATUSES.has(response.status)) {
      return null;
    }
    return (
      parseRetryAfter(response.headers.get("retry-after")) ??
      rateLimitWait(response.headers.get("ratelimit")) ??
      backoff(attempt)
    );
  }
}

/**
 * @param {number} ms
 * @param {AbortSignal | null | undefined} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
