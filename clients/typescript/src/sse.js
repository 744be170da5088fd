// Server-Sent Events: a `text/event-stream` parser (the WHATWG EventSource rules the
// gateway's streams are written for: `event:`, `data:` lines joined by newlines, `id:`,
// `retry:`, `:` comments, a blank line dispatches) over a fetch response body. Node has
// fetch but no EventSource, and EventSource cannot send `X-API-Key` anyway.

// Bound on one event's data (the largest is a job snapshot, well under this): a stream
// that never sends a blank line cannot grow the buffer without limit.
export const MAX_EVENT_CHARS = 1 << 20;

/**
 * @typedef {object} SseMessage
 * @property {string} event its type (`message` if unnamed)
 * @property {string} data
 * @property {string | null} id
 */

/** Feed it lines (without their line ending); it returns each completed event. */
export class SseParser {
  constructor() {
    /** The server's `retry:` hint, milliseconds. @type {number | null} */
    this.retryMs = null;
    this.event = "";
    /** @type {string[]} */
    this.data = [];
    this.size = 0;
    /** @type {string | null} */
    this.id = null;
  }

  /** Drop a half-received event (a new connection starts clean; `retryMs` stays). */
  reset() {
    this.event = "";
    /** @type {string[]} */
    this.data = [];
    this.size = 0;
    /** @type {string | null} */
    this.id = null;
  }

  /**
   * Take one line; the event it completes, if any.
   * @param {string} line
   * @returns {SseMessage | null}
   */
  feed(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // a comment: the gateway's keep-alive
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.event = value;
    else if (name === "data") {
      this.size += value.length + 1;
      if (this.size > MAX_EVENT_CHARS) throw new Error("an event stream sent an event over the size bound");
      this.data.push(value);
    } else if (name === "id" && !value.includes("\0")) this.id = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return null;
  }

  /** @returns {SseMessage | null} */
  dispatch() {
    const message = this.data.length
      ? { event: this.event || "message", data: this.data.join("\n"), id: this.id }
      : null;
    this.reset();
    return message;
  }
}

/**
 * The lines of a byte stream (split on CRLF, LF or CR, as the format allows).
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<string>}
 */
export async function* lines(body) {
  const decoder = /** @type {ReadableWritablePair<string, Uint8Array>} */ (
    /** @type {unknown} */ (new TextDecoderStream())
  );
  const reader = body.pipeThrough(decoder).getReader();
  let buffer = "";
  let pendingCr = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let chunk = value;
      if (pendingCr && chunk.startsWith("\n")) chunk = chunk.slice(1); // the LF of a split CRLF
      pendingCr = false;
      buffer += chunk;
      if (buffer.length > MAX_EVENT_CHARS) throw new Error("an event stream sent a line over the size bound");
      let match;
      while ((match = /\r\n|\r|\n/.exec(buffer))) {
        if (match[0] === "\r" && match.index === buffer.length - 1) {
          pendingCr = true; // may be the first half of a CRLF split across chunks
        }
        yield buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}
