// Image references on the command line: [http(s)://]host[:port]/repository[:tag][@digest], as docker writes them,
// with an optional scheme (https unless given, or unless --plain-http). Names and tags follow the registry's grammar.
import { isRepositoryName, isTag } from "../src/grammar.ts";
import { isSha256Digest } from "./manifests.ts";

export interface ImageReference {
  origin: URL;
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseReference(text: string, { plainHttp = false }: { plainHttp?: boolean } = {}): ImageReference {
  const schemed = /^(https?):\/\/(.*)$/.exec(text);
  const scheme = schemed ? schemed[1] : plainHttp ? "http" : "https";
  const rest = schemed ? (schemed[2] ?? "") : text.replace(/^docker:\/\//, "");
  const slash = rest.indexOf("/");
  if (slash <= 0) throw new Error(`${text}: expected host/repository[:tag], e.g. registry.example.com/team/app:1`);
  const host = rest.slice(0, slash);
  let name = rest.slice(slash + 1);
  let digest: string | undefined;
  const at = name.indexOf("@");
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!isSha256Digest(digest)) throw new Error(`${text}: ${digest} is not a sha256 digest`);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!isTag(tag)) throw new Error(`${text}: ${tag} is not a valid tag`);
  }
  if (!isRepositoryName(name)) throw new Error(`${text}: ${name} is not a valid repository name`);
  return { origin: new URL(`${scheme}://${host}`), repository: name, ...(tag !== undefined && { tag }), ...(digest && { digest }) };
}

export function formatReference(reference: ImageReference): string {
  return `${reference.origin.host}/${reference.repository}${reference.tag ? `:${reference.tag}` : ""}${reference.digest ? `@${reference.digest}` : ""}`;
}
