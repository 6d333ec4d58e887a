// The whole client: POST a generated, typed document to /graphql. Errors come back typed: GraphQL errors
// keep the API's `extensions.code` (docs/api.md "Errors"); a network failure says the API is unreachable.
import type { TypedDocumentString } from "./gql/graphql";

export class ApiError extends Error {
  constructor(message: string, readonly code: string, readonly extensions: Record<string, unknown> = {}) {
    super(message);
    this.name = "ApiError";
  }
}

const KEY = "atlas.apiKey";
export const apiKey = {
  get: (): string => sessionStorage.getItem(KEY) ?? "",
  set: (v: string): void => (v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY)),
};

export let endpoint = "/graphql";
export function setEndpoint(url: string): void {
  endpoint = url;
}

export async function request<R, V>(doc: TypedDocumentString<R, V>, variables: V, opts: { signal?: AbortSignal; fetchImpl?: typeof fetch } = {}): Promise<R> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  const key = apiKey.get();
  if (key) headers["x-api-key"] = key;
  let res: Response;
  try {
    res = await (opts.fetchImpl ?? fetch)(endpoint, { method: "POST", headers, body: JSON.stringify({ query: doc.toString(), variables }), signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`The API at ${endpoint} is unreachable (${(e as Error).message}). Is \`atlas serve\` running?`, "UNREACHABLE");
  }
  let body: { data?: R | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };
  try {
    body = await res.json();
  } catch {
    const code = ({ 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED" } as Record<number, string>)[res.status] ?? "BAD_RESPONSE";
    throw new ApiError(`The API answered HTTP ${res.status} without JSON.`, code);
  }
  if (body.errors?.length) {
    const e = body.errors[0];
    throw new ApiError(e.message, String(e.extensions?.code ?? (res.status === 401 ? "UNAUTHENTICATED" : "GRAPHQL_ERROR")), e.extensions ?? {});
  }
  if (!res.ok || !body.data) throw new ApiError(`The API answered HTTP ${res.status}.`, "BAD_RESPONSE");
  return body.data;
}

/** What to tell the user for an error, by code: the API's message plus the fix where we know it. */
export function explain(e: unknown): { title: string; hint: string } {
  if (!(e instanceof ApiError)) return { title: String((e as Error)?.message ?? e), hint: "Reload the page; if it persists, check the server log." };
  const retry = typeof e.extensions.retryAfter === "number" ? ` Retry in about ${Math.ceil(e.extensions.retryAfter)} s.` : "";
  if (e.code === "UNAUTHENTICATED" && apiKey.get()) {
    return { title: e.message, hint: "The server refused the key in the key field (wrong or revoked): correct it, or clear it to read anonymously." };
  }
  const hints: Record<string, string> = {
    UNREACHABLE: "Start the API with `atlas serve` and reload.",
    DATABASE_UNAVAILABLE: "Neo4j is down or restarting: start it with `atlas db start`; the page works again once it answers.",
    FEATURE_NOT_FOUND: "Check the uid, or find the feature with Search.",
    INVALID_INPUT: "Change the value named in the message.",
    QUERY_TIMEOUT: "Ask for less: lower depth or topK, or raise minSimilarity.",
    QUERY_TOO_COMPLEX: "Ask for less per request (smaller pages).",
    UNAUTHENTICATED: "Enter an API key with the right role in the key field (top right).",
    FORBIDDEN: "Your API key lacks the role for this; ask an admin (`atlas keys create`).",
    RATE_LIMITED: "Too many requests for this key or address: wait a moment and retry.",
    STEER_BUSY: "The model is busy with other steering requests.",
    PAYLOAD_TOO_LARGE: "The request is too large: ask for less at once.",
  };
  return { title: e.message, hint: (hints[e.code] ?? "") + (["RATE_LIMITED", "STEER_BUSY"].includes(e.code) ? retry : "") };
}

/** Download a file from a GET endpoint (the exports), with the API key when one is set: a plain link cannot
 * send the header, and servers with ATLAS_API_READS=keyed refuse exports without it. */
export async function download(href: string, filename: string): Promise<void> {
  const key = apiKey.get();
  const res = await fetch(href, { headers: key ? { "x-api-key": key } : {} });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    let code = "BAD_RESPONSE";
    try {
      const body = await res.json();
      msg = body.error ?? msg;
      code = body.code ?? code;
    } catch {
      /* not JSON: keep the status */
    }
    throw new ApiError(msg, code);
  }
  saveBlob(await res.blob(), filename);
}

/** Hand a blob to the browser as a download named ``filename`` (exports and the flow graph's SVG/PNG). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
