// The grammar of repository names, tags and digests (OCI dist-spec "Pulling manifests", image-spec descriptor.md).
// It imports nothing: the command-line tools (cli/) load it as it is, with Node's type stripping.
const NAME_COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
export const NAME = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
export const MAX_NAME_LENGTH = 255;
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export type Algorithm = "sha256" | "sha512";
/** The encoding each supported algorithm requires: lowercase hex of its length. */
export const ENCODED: Record<Algorithm, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function isTag(text: string): boolean {
  return TAG.test(text);
}
