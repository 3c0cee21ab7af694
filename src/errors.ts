// Every failure the registry reports is one of these codes, each with exactly one HTTP status, rendered by
// app.onError (as Distribution's errcode registers them). The first block is the OCI dist-spec's "Error Codes"; the
// second holds the statuses the spec's codes do not cover, named as Distribution names them where it has a name.
const ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, message: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: "manifest references a manifest or blob unknown to registry" },
  MANIFEST_INVALID: { status: 400, message: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown to registry" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, message: "provided length did not match content length" },
  TAG_INVALID: { status: 400, message: "manifest tag did not match URI" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },

  PAGINATION_NUMBER_INVALID: { status: 400, message: "invalid number of results requested" },
  REQUEST_INVALID: { status: 400, message: "the request is malformed" },
  NOT_FOUND: { status: 404, message: "no such endpoint or resource" },
  LENGTH_REQUIRED: { status: 411, message: "the request needs a Content-Length" },
  REQUEST_TOO_LARGE: { status: 413, message: "the request body is too large" },
  RANGE_INVALID: { status: 416, message: "invalid content range" },
  UNKNOWN: { status: 500, message: "unknown error" },
  UPSTREAM_UNAVAILABLE: { status: 502, message: "the upstream registry could not be reached or failed" },
} as const satisfies Record<string, { status: number; message: string }>;

/** The registered codes and their one status each (tests walk it). */
export const ERROR_TABLE: Readonly<Record<ErrorCode, { status: number; message: string }>> = ERRORS;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  errors: { code: ErrorCode; message: string; detail: unknown }[];
}

export class RegistryError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    readonly detail: unknown = null,
    options: { message?: string; headers?: Record<string, string> } = {},
  ) {
    super(options.message ?? ERRORS[code].message);
    this.name = "RegistryError";
    this.status = ERRORS[code].status;
    this.headers = options.headers ?? {};
  }

  toJSON(): ErrorBody {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }

  toResponse(method = "GET"): Response {
    const headers = new Headers(this.headers);
    headers.set("Content-Type", "application/json");
    // A HEAD response carries the status only.
    return new Response(method === "HEAD" ? null : JSON.stringify(this.toJSON()), { status: this.status, headers });
  }
}

/** The plain-data form of a RegistryError, for crossing the Durable Object RPC boundary (which drops subclasses). */
export interface SerializedError {
  code: ErrorCode;
  detail: unknown;
  status: number;
  message: string;
  headers: Record<string, string>;
}

export function serializeError(error: RegistryError): SerializedError {
  return { code: error.code, detail: error.detail, status: error.status, message: error.message, headers: error.headers };
}

export function deserializeError(error: SerializedError): RegistryError {
  return new RegistryError(error.code, error.detail, { message: error.message, headers: error.headers });
}
