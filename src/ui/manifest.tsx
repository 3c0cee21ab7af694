import type { ManifestDetails, ReferrerGroup } from "../search/details";
import type { ImageConfig } from "../search/image-config";
import { formatBytes, isoTime, shortDigest, shortMediaType, timeAgo } from "./format";
import { ArtifactBadge, CopyButton, Pull } from "./layout";
import { SignatureBadge, SignatureSection } from "./signature";
import { VulnerabilityBadge, VulnerabilitySection } from "./vulnerabilities";

const KIND_LABELS = { index: "Multi-platform index", image: "Image", artifact: "Artifact" } as const;
const SIZE_NOTES = { index: "(all platforms)", image: "(config and layers, compressed)", artifact: "(config and files)" } as const;

/** A tag's or a digest's page: pull commands, platforms or config and layers, annotations, attached artifacts. */
export function ManifestPage(props: { details: ManifestDetails; host: string; canDelete: boolean }) {
  const { details, host } = props;
  const { repository, tag, digest } = details;
  return (
    <>
      <div class="crumbs">
        <a href="/">Repositories</a> / <a href={`/r/${repository}`}>{repository}</a> /
      </div>
      <h1>{tag ? `${repository}:${tag}` : `${repository}@${shortDigest(digest)}`}</h1>
      <p class="lead">
        <span class="badges">
          <span class="badge">{KIND_LABELS[details.kind]}</span>
          {details.artifactType && <ArtifactBadge artifactType={details.artifactType} />}
          <SignatureBadge verdict={details.signature} />
          <VulnerabilityBadge state={details.vulnerabilities.state} />
        </span>{" "}
        {details.annotations["org.opencontainers.image.description"] ?? ""}
      </p>

      <section class="card" id="pull">
        <h2>Pull</h2>
        {tag && <Pull command={`docker pull ${host}/${repository}:${tag}`} />}
        <Pull command={`docker pull ${host}/${repository}@${digest}`} />
      </section>

      <section class="card" id="summary">
        <dl class="kv">
          <dt>Digest</dt>
          <dd>
            <code>{digest}</code>
          </dd>
          <dt>Media type</dt>
          <dd>
            <code>{details.mediaType}</code>
          </dd>
          {details.artifactType && (
            <>
              <dt>Artifact type</dt>
              <dd>
                <code>{details.artifactType}</code>
              </dd>
            </>
          )}
          <dt>Pushed</dt>
          <dd title={isoTime(details.pushedAt)}>
            {timeAgo(details.pushedAt)} <span class="muted">({isoTime(details.pushedAt)})</span>
          </dd>
          <dt>Size</dt>
          <dd>
            {formatBytes(details.size)}{" "}
            <span class="muted">{SIZE_NOTES[details.kind]}</span>
          </dd>
          {details.subject && (
            <>
              <dt>Attached to</dt>
              <dd>
                <a href={`/r/${repository}/-/manifests/${details.subject}`}>
                  <code>{details.subject}</code>
                </a>
              </dd>
            </>
          )}
        </dl>
      </section>

      {details.kind === "index" && <Platforms details={details} />}
      {details.config && <Config config={details.config} />}
      {details.kind !== "index" && <Layers details={details} />}
      <SignatureSection repository={repository} verdict={details.signature} />
      <VulnerabilitySection repository={repository} details={details.vulnerabilities} />
      <Annotations annotations={details.annotations} />
      <Referrers repository={repository} groups={details.referrers} />

      {tag && props.canDelete && (
        <section class="card" id="delete">
          <h2>Delete this tag</h2>
          <p class="muted">
            Removes the tag {tag}. The manifest stays available by digest, and other tags that point at it stay.
          </p>
          <a class="button danger" href={`/r/${repository}/-/tags/${tag}/delete`}>
            Delete tag…
          </a>
        </section>
      )}
    </>
  );
}

function Platforms(props: { details: ManifestDetails }) {
  const { details } = props;
  return (
    <section class="card flush" id="platforms">
      <h2>
        Platforms <span class="count">{details.platforms.filter((entry) => entry.platform !== "attestation").length}</span>
      </h2>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th>Platform</th>
              <th>Digest</th>
              <th class="num">Size</th>
            </tr>
          </thead>
          <tbody>
            {details.platforms.map((entry) => (
              <tr>
                <td>{entry.platform === "attestation" ? <span class="badge attestation">attestation</span> : <strong>{entry.platform}</strong>}</td>
                <td class="break">
                  {entry.stored ? (
                    <a href={`/r/${details.repository}/-/manifests/${entry.digest}`}>
                      <code>{shortDigest(entry.digest)}</code>
                    </a>
                  ) : (
                    <code title="not stored in this repository">{shortDigest(entry.digest)}</code>
                  )}
                </td>
                <td class="num">{formatBytes(entry.size)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Config(props: { config: NonNullable<ManifestDetails["config"]> }) {
  const { config: read } = props;
  if (!read.config) {
    return (
      <section class="card" id="config">
        <h2>Config</h2>
        <p class="muted">Not shown: {read.problem}.</p>
      </section>
    );
  }
  const image: ImageConfig = read.config;
  const settings = image.config ?? {};
  const platform = [image.os, image.architecture, image.variant].filter(Boolean).join("/");
  const labels = Object.entries(settings.Labels ?? {});
  const command = (parts: string[] | null | undefined) => (parts && parts.length > 0 ? <code>{JSON.stringify(parts)}</code> : <span class="muted">—</span>);
  return (
    <section class="card" id="config">
      <h2>Config</h2>
      <dl class="kv">
        {platform && (
          <>
            <dt>Platform</dt>
            <dd>{platform}</dd>
          </>
        )}
        {image.created && (
          <>
            <dt>Created</dt>
            <dd>{image.created}</dd>
          </>
        )}
        <dt>Entrypoint</dt>
        <dd>{command(settings.Entrypoint)}</dd>
        <dt>Command</dt>
        <dd>{command(settings.Cmd)}</dd>
        {settings.WorkingDir && (
          <>
            <dt>Working dir</dt>
            <dd>
              <code>{settings.WorkingDir}</code>
            </dd>
          </>
        )}
        {settings.User && (
          <>
            <dt>User</dt>
            <dd>
              <code>{settings.User}</code>
            </dd>
          </>
        )}
        {settings.ExposedPorts && Object.keys(settings.ExposedPorts).length > 0 && (
          <>
            <dt>Ports</dt>
            <dd>
              <code>{Object.keys(settings.ExposedPorts).join(", ")}</code>
            </dd>
          </>
        )}
        <dt>Environment</dt>
        <dd>
          {settings.Env && settings.Env.length > 0 ? (
            <ul class="plain mono">
              {settings.Env.map((variable) => (
                <li>{variable}</li>
              ))}
            </ul>
          ) : (
            <span class="muted">—</span>
          )}
        </dd>
        <dt>Labels</dt>
        <dd>
          {labels.length > 0 ? (
            <ul class="plain">
              {labels.map(([key, value]) => (
                <li>
                  <code>{key}</code> = {value}
                </li>
              ))}
            </ul>
          ) : (
            <span class="muted">—</span>
          )}
        </dd>
        <dt>Config blob</dt>
        <dd>
          <code title={read.descriptor.digest}>{shortDigest(read.descriptor.digest)}</code>{" "}
          <span class="muted">{formatBytes(read.descriptor.size)}</span>
        </dd>
      </dl>
    </section>
  );
}

function Layers(props: { details: ManifestDetails }) {
  const { layers, kind } = props.details;
  const total = layers.reduce((sum, layer) => sum + layer.size, 0);
  return (
    <section class="card flush" id="layers">
      <h2>
        {kind === "artifact" ? "Files" : "Layers"} <span class="count">{layers.length}</span>
        <span class="sub"> · {formatBytes(total)}</span>
      </h2>
      {layers.length === 0 ? (
        <p class="empty">None.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th class="num">#</th>
                <th>{kind === "artifact" ? "File" : "Digest and build step"}</th>
                <th class="num">Size</th>
              </tr>
            </thead>
            <tbody>
              {layers.map((layer, index) => (
                <tr>
                  <td class="num muted">{index + 1}</td>
                  <td class="break">
                    {layer.title && <strong>{layer.title} </strong>}
                    <code title={layer.digest}>{shortDigest(layer.digest)}</code>{" "}
                    <span class="badge" title={layer.mediaType}>
                      {shortMediaType(layer.mediaType)}
                    </span>
                    {layer.createdBy && <span class="cmd mono">{layer.createdBy}</span>}
                  </td>
                  <td class="num">{formatBytes(layer.size)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Annotations(props: { annotations: Record<string, string> }) {
  const entries = Object.entries(props.annotations);
  if (entries.length === 0) return null;
  return (
    <section class="card" id="annotations">
      <h2>Annotations</h2>
      <dl class="kv">
        {entries.map(([key, value]) => (
          <>
            <dt>
              <code>{key}</code>
            </dt>
            <dd>{value}</dd>
          </>
        ))}
      </dl>
    </section>
  );
}

function Referrers(props: { repository: string; groups: ReferrerGroup[] }) {
  return (
    <section class="card" id="referrers">
      <h2>Attached artifacts</h2>
      {props.groups.length === 0 ? (
        <p class="muted">Nothing is attached: no signatures, SBOMs or scan reports refer to this manifest.</p>
      ) : (
        props.groups.map((group) => (
          <div class="referrer-group" data-artifact-type={group.artifactType}>
            <h3>
              <ArtifactBadge artifactType={group.artifactType} />
              <code>{group.artifactType}</code>
              <span class="count">{group.referrers.length}</span>
            </h3>
            <ul class="rows">
              {group.referrers.map((referrer) => (
                <li>
                  <div class="grow">
                    <a href={`/r/${props.repository}/-/manifests/${referrer.digest}`}>
                      <code>{shortDigest(referrer.digest)}</code>
                    </a>
                    <div class="meta">
                      <span>{formatBytes(referrer.size)} manifest</span>
                      {referrer.annotations?.["org.opencontainers.image.created"] && (
                        <span>created {referrer.annotations["org.opencontainers.image.created"]}</span>
                      )}
                    </div>
                  </div>
                  <CopyButton text={referrer.digest} label="Copy digest" />
                </li>
              ))}
            </ul>
          </div>
        ))
      )}
    </section>
  );
}

/** The confirmation asked before a tag is deleted (a POST from this page, checked for its origin). */
export function DeleteTagPage(props: { repository: string; tag: string; digest: string }) {
  const { repository, tag } = props;
  return (
    <section class="card">
      <div class="crumbs">
        <a href="/">Repositories</a> / <a href={`/r/${repository}`}>{repository}</a> /
      </div>
      <h1>
        Delete tag {tag} of {repository}?
      </h1>
      <p class="lead">
        The tag goes at once: pulls of <code>{`${repository}:${tag}`}</code> will fail. The manifest{" "}
        <code>{shortDigest(props.digest)}</code> stays available by digest and through any other tag.
      </p>
      <form method="post" action={`/r/${repository}/-/tags/${tag}/delete`} class="actions">
        <button class="danger" type="submit">
          Delete tag {tag}
        </button>
        <a class="button" href={`/r/${repository}/-/tags/${tag}`}>
          Cancel
        </a>
      </form>
    </section>
  );
}
