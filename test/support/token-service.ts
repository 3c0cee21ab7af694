// A Docker token service of the test's own, in front of Debian's docker-registry (CNCF Distribution's `auth: token`):
// the shape of Docker Hub, whose registry sends clients to a token service on another host. ES256 JWTs signed with a
// key whose self-signed certificate Distribution trusts (rootcertbundle) and finds in the token's x5c header.
import { createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { mustRun } from "./command";
import { freePort } from "../e2e/harness";

export interface TokenService {
  /** The realm, on host name `localhost` (the registry is reached at 127.0.0.1: another host). */
  realm: string;
  service: string;
  issuer: string;
  certificate: string;
  /** Each token request: the Basic user it carried (null: anonymous) and the scopes asked for. */
  requests: { user: string | null; scopes: string[] }[];
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/**
 * Grants pull on every repository to anyone except under `private/`, which, like push anywhere, needs `user` and
 * `password` as Basic credentials.
 */
export async function startTokenService(dir: string, user: string, password: string): Promise<TokenService> {
  const keyFile = join(dir, "token-key.pem");
  const certificate = join(dir, "token-cert.pem");
  await mustRun("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", certificate, "-days", "2", "-subj", "/CN=test token service"]);
  const key = createPrivateKey(await readFile(keyFile));
  const der = new X509Certificate(await readFile(certificate)).raw.toString("base64");
  const port = await freePort();
  const service = "upstream-registry";
  const issuer = "test-token-service";
  const requests: TokenService["requests"] = [];

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", `http://localhost:${port}`);
    const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? "")?.[1];
    const [sentUser, sentPassword] = basic ? Buffer.from(basic, "base64").toString().split(":") : [null, null];
    const authenticated = sentUser === user && sentPassword === password;
    if (basic && !authenticated) {
      response.writeHead(401).end();
      return;
    }
    const scopes = url.searchParams.getAll("scope").flatMap((scope) => scope.split(" "));
    requests.push({ user: sentUser ?? null, scopes });
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = [scope.slice(0, scope.indexOf(":")), scope.slice(scope.indexOf(":") + 1, scope.lastIndexOf(":")), scope.slice(scope.lastIndexOf(":") + 1)];
      if (type !== "repository") return [];
      const granted = actions.split(",").filter((action) => authenticated || (action === "pull" && !name.startsWith("private/")));
      return granted.length > 0 ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", x5c: [der] }));
    const claims = b64url(JSON.stringify({ iss: issuer, sub: sentUser ?? "", aud: service, exp: now + 300, nbf: now - 5, iat: now, jti: randomUUID(), access }));
    const signature = sign("sha256", Buffer.from(`${header}.${claims}`), { key, dsaEncoding: "ieee-p1363" });
    const token = `${header}.${claims}.${b64url(signature)}`;
    response.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((listening) => server.listen(port, "127.0.0.1", listening));
  return {
    realm: `http://localhost:${port}/token`,
    service,
    issuer,
    certificate,
    requests,
    stop: () => new Promise((closed) => server.close(() => closed())),
  };
}
