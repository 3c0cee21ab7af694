import { describe, expect, it } from "vitest";
import { ERROR_TABLE, RegistryError, type ErrorCode } from "../../src/errors";
import { call } from "./helpers";

// OCI dist-spec "Error Codes", with the statuses its endpoint table (and Distribution's errcode) gives them.
const SPEC: Partial<Record<ErrorCode, number>> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
};

describe("the error table", () => {
  const codes = Object.keys(ERROR_TABLE) as ErrorCode[];

  it("gives the spec's codes the spec's statuses", () => {
    for (const [code, status] of Object.entries(SPEC)) expect([code, ERROR_TABLE[code as ErrorCode].status]).toEqual([code, status]);
  });

  it("names codes as the spec requires and renders each with its one status, whatever the options", async () => {
    for (const code of codes) {
      expect(code).toMatch(/^[A-Z_]+$/);
      const error = new RegistryError(code, { some: "detail" }, { message: "custom", headers: { "X-Test": "1" } });
      const response = error.toResponse();
      expect(response.status).toBe(ERROR_TABLE[code].status);
      expect(response.headers.get("X-Test")).toBe("1");
      expect(await response.json()).toEqual({ errors: [{ code, message: "custom", detail: { some: "detail" } }] });
      expect((await new RegistryError(code).toResponse("HEAD").text())).toBe("");
    }
  });

  it("answers an unknown endpoint with NOT_FOUND and its registered status", async () => {
    const response = await call("/v2/a/b/nothing-here");
    expect(response.status).toBe(ERROR_TABLE.NOT_FOUND.status);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NOT_FOUND");
  });
});
