// Types of the SDK's public surface. The API's own types are generated into schema.d.ts
// (`paths`, `components`, `operations`) from the public port's OpenAPI document.
import type { Client, FetchResponse, MaybeOptionalInit } from "openapi-fetch";
import type { HttpMethod, PathsWithMethod, RequiredKeysOf } from "openapi-typescript-helpers";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];
export type Job = Schemas["JobOut"];
export type Problem = Schemas["Problem"];

export interface RetryPolicy {
  /** Retries per call (default 3). */
  maxRetries?: number;
  /** Longest server-requested wait (`Retry-After`) honoured, in seconds (default 30). */
  maxWaitS?: number;
  /** First backoff when the server gave no hint, seconds (default 0.5). */
  backoffS?: number;
  /** Backoff cap, seconds (default 8). */
  backoffMaxS?: number;
}

export interface RetryNotice {
  method: string;
  url: string;
  attempt: number;
  delayS: number;
  status?: number;
  error?: unknown;
}

export interface GatewayClientOptions {
  /** The public port, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** An API key (`X-API-Key`). */
  apiKey?: string;
  /** A bearer token (a Firebase ID token), or a function giving a fresh one per request. */
  token?: string | (() => string | Promise<string>);
  retry?: RetryPolicy;
  /** Called before each retry (and each stream reconnect). */
  onRetry?: (notice: RetryNotice) => void;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

export interface JobSnapshot {
  kind: "snapshot" | "resync";
  seq: number;
  job: Job;
}

export interface JobEvent {
  kind: "event";
  id: string;
  type: string;
  job_id: string;
  seq: number;
  at: string;
  owner: string;
  data: { state: string; progress: Schemas["Progress"]; [key: string]: unknown };
  /** Whether this is the job's last event. */
  terminal: boolean;
}

export type FollowEvent = JobSnapshot | JobEvent;

type InitParam<Init> = RequiredKeysOf<Init> extends never
  ? [(Init & { [key: string]: unknown })?]
  : [Init & { [key: string]: unknown }];

/** Like openapi-fetch's method, but resolving to the success data (errors are thrown). */
type Unwrapped<M extends HttpMethod> = <
  Path extends PathsWithMethod<paths, M>,
  Init extends MaybeOptionalInit<paths[Path], M>,
>(
  url: Path,
  ...init: InitParam<Init>
) => Promise<NonNullable<FetchResponse<Extract<paths[Path][M], Record<string | number, any>>, Init, `${string}/${string}`>["data"]>>;

type Paginated = {
  [P in PathsWithMethod<paths, "get">]: paths[P]["get"] extends {
    responses: { 200: { content: { "application/json": { items: unknown[]; next_cursor: string | null } } } };
  }
    ? P
    : never;
}[PathsWithMethod<paths, "get">];

type PageOf<P extends Paginated> = paths[P]["get"] extends {
  responses: { 200: { content: { "application/json": infer Page } } };
}
  ? Page
  : never;
type ItemOf<P extends Paginated> = PageOf<P> extends { items: (infer Item)[] } ? Item : never;

export interface GatewayClient {
  /** The underlying openapi-fetch client: `{ data, error, response }`, nothing thrown. */
  raw: Client<paths>;
  GET: Unwrapped<"get">;
  POST: Unwrapped<"post">;
  PUT: Unwrapped<"put">;
  PATCH: Unwrapped<"patch">;
  DELETE: Unwrapped<"delete">;
  /** Every page of a cursor-paginated list. */
  pages<P extends Paginated>(
    path: P,
    ...init: InitParam<MaybeOptionalInit<paths[P], "get">>
  ): AsyncGenerator<PageOf<P>>;
  /** Every item of a cursor-paginated list, the next page fetched only when needed. */
  paginate<P extends Paginated>(
    path: P,
    ...init: InitParam<MaybeOptionalInit<paths[P], "get">>
  ): AsyncGenerator<ItemOf<P>>;
  /** A job's events until its terminal one, resumed with `Last-Event-ID` after a drop. */
  followJob(
    jobId: string,
    options?: { lastEventId?: string | null; maxReconnects?: number; signal?: AbortSignal },
  ): AsyncGenerator<FollowEvent>;
}

export function createGatewayClient(options: GatewayClientOptions): GatewayClient;
export const TERMINAL_STATES: ReadonlySet<string>;
export const TERMINAL_EVENTS: ReadonlySet<string>;

export class ClientError extends Error {}
export class GatewayError extends ClientError {
  status: number;
  type: string | undefined;
  title: string;
  detail: string;
  instance: string | undefined;
  requestId: string | null;
  problem: Partial<Problem> & Record<string, unknown>;
  /** Seconds the server asked to wait (`Retry-After`), if it said. */
  retryAfter: number | null;
  static from(status: number, body: unknown, headers?: Headers): GatewayError;
}
export class BadRequest extends GatewayError {}
export class Unauthorized extends GatewayError {}
export class PaymentRequired extends GatewayError {}
export class Forbidden extends GatewayError {}
export class NotFound extends GatewayError {}
export class Conflict extends GatewayError {}
export class RateLimited extends GatewayError {}
export class ServiceUnavailable extends GatewayError {}
export class ValidationFailed extends GatewayError {
  errors: Schemas["FieldError"][];
}
export class StreamInterrupted extends ClientError {
  lastEventId: string | null;
}
export function parseRetryAfter(value: string | null | undefined): number | null;
export function newIdempotencyKey(): string;
export function rateLimitWait(header: string | null): number | null;

export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}
export class SseParser {
  retryMs: number | null;
  feed(line: string): SseMessage | null;
  reset(): void;
}
export function lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string>;
