// The SDK's errors. Every answer of 400 or more becomes a `GatewayError` carrying the
// RFC 9457 problem document's fields; the subclass says the status, so callers can
// `instanceof ValidationFailed` instead of comparing numbers.
//
//   ClientError
//   ├── GatewayError (status, type, title, detail, instance, requestId, problem)
//   │   ├── BadRequest 400, Unauthorized 401, PaymentRequired 402, Forbidden 403,
//   │   ├── NotFound 404, Conflict 409, ValidationFailed 422 (errors),
//   │   └── RateLimited 429 (retryAfter), ServiceUnavailable 503 (retryAfter)
//   └── StreamInterrupted (a job stream that could not be resumed)

/** The base of every error this SDK raises itself. */
export class ClientError extends Error {}

/** An error answer of the gateway, with its problem document. */
export class GatewayError extends ClientError {
  /**
   * @param {number} status
   * @param {Record<string, unknown>} problem the problem document (or {} if the body was none)
   * @param {Headers} [headers]
   */
  constructor(status, problem, headers) {
    const title = typeof problem.title === "string" ? problem.title : "error";
    const detail = typeof problem.detail === "string" ? problem.detail : "";
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`);
    this.name = new.target.name;
    this.status = status;
    /** @type {string | undefined} */
    this.type = typeof problem.type === "string" ? problem.type : undefined;
    this.title = title;
    this.detail = detail;
    /** @type {string | undefined} */
    this.instance = typeof problem.instance === "string" ? problem.instance : undefined;
    /** @type {string | null} */
    this.requestId =
      typeof problem.request_id === "string" ? problem.request_id : headers?.get("x-request-id") ?? null;
    this.problem = problem;
    /** Seconds the server asked to wait (`Retry-After`), if it said. */
    this.retryAfter = headers ? parseRetryAfter(headers.get("retry-after")) : null;
  }

  /**
   * The error an answer stands for (a subclass by status).
   * @param {number} status
   * @param {unknown} body the parsed body (a problem document, normally)
   * @param {Headers} [headers]
   * @returns {GatewayError}
   */
  static from(status, body, headers) {
    const problem = body && typeof body === "object" && !Array.isArray(body) ? /** @type {Record<string, unknown>} */ (body) : {};
    const Kind = BY_STATUS.get(status) ?? GatewayError;
    return new Kind(status, problem, headers);
  }
}

export class BadRequest extends GatewayError {}
export class Unauthorized extends GatewayError {}
export class PaymentRequired extends GatewayError {}
export class Forbidden extends GatewayError {}
export class NotFound extends GatewayError {}
export class Conflict extends GatewayError {}
export class RateLimited extends GatewayError {}
export class ServiceUnavailable extends GatewayError {}

/** A 422: the request's fields were refused; `errors` lists which and why. */
export class ValidationFailed extends GatewayError {
  /**
   * @param {number} status
   * @param {Record<string, unknown>} problem
   * @param {Headers} [headers]
   */
  constructor(status, problem, headers) {
    super(status, problem, headers);
    /** @type {Array<{loc?: unknown[], msg?: string, type?: string}>} */
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

/** A job stream that could not be resumed within `maxReconnects`. */
export class StreamInterrupted extends ClientError {
  /**
   * @param {string} message
   * @param {string | null} lastEventId where a later follow can resume from
   * @param {unknown} [cause]
   */
  constructor(message, lastEventId, cause) {
    super(message, { cause });
    this.name = "StreamInterrupted";
    this.lastEventId = lastEventId;
  }
}

/** @type {Map<number, typeof GatewayError>} */
const BY_STATUS = new Map([
  [400, BadRequest],
  [401, Unauthorized],
  [402, PaymentRequired],
  [403, Forbidden],
  [404, NotFound],
  [409, Conflict],
  [422, ValidationFailed],
  [429, RateLimited],
  [503, ServiceUnavailable],
]);

/**
 * Seconds from a `Retry-After` value (delay-seconds or an HTTP date); null if absent or unreadable.
 * @param {string | null | undefined} value
 * @returns {number | null}
 */
export function parseRetryAfter(value) {
  if (value == null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}
