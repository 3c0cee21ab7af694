// From an SBOM's package (a package URL, https://github.com/package-url/purl-spec, and a version) to what the OSV
// database is looked up by: the ecosystem ("npm", "PyPI", "Debian:12", "Alpine:v3.19", …), the names a record may use
// (a distribution's records name the source package, which the purl's `upstream` qualifier or the SBOM carries), and
// the version as the ecosystem writes it.
import { ecosystemBase } from "./versions";

export interface PackageUrl {
  type: string;
  namespace: string;
  name: string;
  version: string;
  qualifiers: Map<string, string>;
}

export interface ScannedPackage {
  /** What a finding calls it: the name as the SBOM has it. */
  label: string;
  ecosystem: string;
  names: string[];
  version: string;
}

const MAX_PURL_LENGTH = 2048;

function decode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function parsePackageUrl(text: string): PackageUrl | null {
  if (text.length > MAX_PURL_LENGTH || !/^pkg:/i.test(text)) return null;
  let rest = text.slice(4).replace(/^\/+/, "");
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = rest.slice(0, hash);
  const qualifiers = new Map<string, string>();
  const question = rest.indexOf("?");
  if (question >= 0) {
    for (const pair of rest.slice(question + 1).split("&")) {
      const equals = pair.indexOf("=");
      if (equals <= 0) continue;
      const value = decode(pair.slice(equals + 1));
      if (value !== null) qualifiers.set(pair.slice(0, equals).toLowerCase(), value);
    }
    rest = rest.slice(0, question);
  }
  let version = "";
  const at = rest.lastIndexOf("@");
  if (at > rest.lastIndexOf("/")) {
    version = decode(rest.slice(at + 1)) ?? "";
    rest = rest.slice(0, at);
  }
  const segments = rest.split("/").filter(Boolean).map(decode);
  if (segments.length < 2 || segments.includes(null)) return null;
  const [type, ...path] = segments as string[];
  return { type: type!.toLowerCase(), namespace: path.slice(0, -1).join("/"), name: path.at(-1)!, version, qualifiers };
}

/** PEP 503: PyPI names compare lowercased, with runs of '-', '_' and '.' as one '-'. */
export function normalizeName(ecosystem: string, name: string): string {
  return ecosystemBase(ecosystem) === "PyPI" ? name.toLowerCase().replace(/[-_.]+/g, "-") : name;
}

// "debian-12", "debian-12.4", "12" -> "12"
function debianRelease(distro: string | undefined): string | null {
  const match = /(?:^|-)(\d+)(?:\.\d+)*$/.exec(distro ?? "");
  return match ? match[1]! : null;
}

// "ubuntu-22.04" -> "22.04:LTS" (even years' April releases are LTS), "ubuntu-23.10" -> "23.10"
function ubuntuRelease(distro: string | undefined): string | null {
  const match = /(?:^|-)(\d{2})\.(\d{2})$/.exec(distro ?? "");
  if (!match) return null;
  const lts = Number(match[1]) % 2 === 0 && match[2] === "04";
  return `${match[1]}.${match[2]}${lts ? ":LTS" : ""}`;
}

// "alpine-3.19.1", "3.19" -> "v3.19"
function alpineRelease(distro: string | undefined): string | null {
  const match = /(?:^|-)v?(\d+)\.(\d+)/.exec(distro ?? "");
  return match ? `v${match[1]}.${match[2]}` : null;
}

/** A source package name and version, from the purl's `upstream` qualifier ("openssl" or "openssl@3.0.11-1"). */
function upstreamOf(purl: PackageUrl, source: { name?: string; version?: string }): { name?: string; version?: string } {
  const upstream = purl.qualifiers.get("upstream");
  if (!upstream) return source;
  const at = upstream.indexOf("@");
  return at < 0 ? { name: upstream, version: source.version } : { name: upstream.slice(0, at), version: upstream.slice(at + 1) };
}

/**
 * The package in OSV's terms, or null for a type the registry does not scan. `version` is the SBOM's own when the
 * purl has none; `source` is a source package an SBOM names beside the purl (Trivy's SrcName and SrcVersion).
 */
export function packageOf(purl: PackageUrl, version: string, source: { name?: string; version?: string } = {}): ScannedPackage | null {
  const installed = purl.version || version;
  if (!installed) return null;
  const plain = (ecosystem: string, name: string, at = installed): ScannedPackage => ({
    label: name,
    ecosystem,
    names: [normalizeName(ecosystem, name)],
    version: at,
  });
  const scoped = purl.namespace ? `${purl.namespace}/${purl.name}` : purl.name;
  switch (purl.type) {
    case "npm":
      return plain("npm", scoped);
    case "pypi":
      return plain("PyPI", purl.name);
    case "golang":
      return plain("Go", scoped, installed.replace(/^v/, ""));
    case "maven":
      return purl.namespace ? plain("Maven", `${purl.namespace}:${purl.name}`) : null;
    case "cargo":
      return plain("crates.io", purl.name);
    case "gem":
      return plain("RubyGems", purl.name);
    case "nuget":
      return plain("NuGet", purl.name);
    case "composer":
      return plain("Packagist", scoped);
    case "hex":
      return plain("Hex", purl.name);
    case "pub":
      return plain("Pub", purl.name);
    case "deb":
    case "apk": {
      const distro = purl.qualifiers.get("distro");
      const vendor = purl.namespace.toLowerCase();
      let ecosystem: string | null = null;
      if (purl.type === "deb" && vendor === "debian") ecosystem = withRelease("Debian", debianRelease(distro));
      else if (purl.type === "deb" && vendor === "ubuntu") ecosystem = withRelease("Ubuntu", ubuntuRelease(distro));
      else if (purl.type === "apk" && vendor === "alpine") ecosystem = withRelease("Alpine", alpineRelease(distro));
      else if (purl.type === "apk" && vendor === "wolfi") ecosystem = "Wolfi";
      else if (purl.type === "apk" && vendor === "chainguard") ecosystem = "Chainguard";
      if (!ecosystem) return null;
      const upstream = upstreamOf(purl, source);
      const names = [...new Set([upstream.name, purl.name].filter((name): name is string => !!name))];
      // Distributions' records give source package versions: the source's, when the SBOM says it differs.
      return { label: purl.name, ecosystem, names, version: upstream.version || installed };
    }
    default:
      return null;
  }
}

function withRelease(base: string, release: string | null): string {
  return release ? `${base}:${release}` : base;
}
