// The tax-lien gateway's TypeScript/JavaScript SDK (public port). Types: src/index.d.ts
// and the generated src/schema.d.ts.
export { createGatewayClient, TERMINAL_EVENTS, TERMINAL_STATES } from "./client.js";
export {
  BadRequest,
  ClientError,
  Conflict,
  Forbidden,
  GatewayError,
  NotFound,
  PaymentRequired,
  RateLimited,
  ServiceUnavailable,
  StreamInterrupted,
  Unauthorized,
  ValidationFailed,
  parseRetryAfter,
} from "./errors.js";
export { newIdempotencyKey, rateLimitWait } from "./retry.js";
export { SseParser, lines } from "./sse.js";
