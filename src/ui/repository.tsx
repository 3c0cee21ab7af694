import type { Page, RepositoryHit } from "../search/search";
import type { Verdict } from "../signatures/verdicts";
import type { VulnerabilityState } from "../vulnerabilities/reports";
import type { TagOrder, TagRecord } from "../storage/search-records";
import { formatBytes, isoTime, shortDigest, timeAgo } from "./format";
import { ArtifactBadge, CopyButton, Notice, Pull } from "./layout";
import { SignatureBadge } from "./signature";
import { VulnerabilityBadge } from "./vulnerabilities";

export function RepositoryPage(props: {
  repository: RepositoryHit;
  tags: Page<TagRecord>;
  /** Each tag's manifest's signature verdict, by digest. */
  signatures: Map<string, Verdict>;
  /** Each tag's manifest's vulnerability summary, by digest. */
  vulnerabilities: Map<string, VulnerabilityState>;
  order: TagOrder;
  host: string;
  deleted: string | null;
  cursor: string | null;
}) {
  const { repository, tags, host, order } = props;
  const name = repository.name;
  const sortLink = (to: TagOrder, label: string) =>
    to === order ? <strong>{label}</strong> : <a href={`/r/${name}${to === "pulled" ? "?sort=pulled" : ""}`}>{label}</a>;
  return (
    <>
      <div class="crumbs">
        <a href="/">Repositories</a> /
      </div>
      <h1>{name}</h1>
      <p class="lead">{repository.description ?? "No description: add the org.opencontainers.image.description annotation when you push."}</p>
      {props.deleted && <Notice tone="ok">Tag {props.deleted} was deleted.</Notice>}
      {repository.latest && (
        <section class="card">
          <h2>Pull the latest tag</h2>
          <Pull command={`docker pull ${host}/${name}:${repository.latest.tag}`} />
        </section>
      )}
      <section class="card flush">
        <h2>
          Tags <span class="count">{repository.tagCount}</span>
          <span class="sub">
            {" · "}
            {sortLink("pushed", "newest push")} · {sortLink("pulled", "last pulled")}
          </span>
        </h2>
        {tags.items.length === 0 ? (
          <p class="empty">{props.cursor ? "No older tags." : "This repository has no tags."}</p>
        ) : (
          <ul class="rows" id="tags">
            {tags.items.map((tag) => (
              <li data-tag={tag.name}>
                <div class="grow">
                  <a class="name" href={`/r/${name}/-/tags/${tag.name}`}>
                    {tag.name}
                  </a>
                  <span class="badges">
                    {tag.platforms.map((platform) => (
                      <span class="badge">{platform}</span>
                    ))}
                    {tag.referrers.map((group) => (
                      <ArtifactBadge artifactType={group.artifactType ?? "unknown"} count={group.count} />
                    ))}
                    <SignatureBadge verdict={props.signatures.get(tag.digest)} />
                    <VulnerabilityBadge state={props.vulnerabilities.get(tag.digest)} />
                  </span>
                  <div class="meta">
                    <code title={tag.digest}>{shortDigest(tag.digest)}</code>
                    <span>{formatBytes(tag.size)}</span>
                    <span title={isoTime(tag.pushedAt)}>pushed {timeAgo(tag.pushedAt)}</span>
                    {tag.lastPulledAt === null ? (
                      <span class="pulls">never pulled</span>
                    ) : (
                      <span class="pulls" title={isoTime(tag.lastPulledAt)}>
                        pulled {tag.pulls} {tag.pulls === 1 ? "time" : "times"}, last {timeAgo(tag.lastPulledAt)}
                      </span>
                    )}
                  </div>
                </div>
                <CopyButton text={`docker pull ${host}/${name}:${tag.name}`} label="Copy pull" />
              </li>
            ))}
          </ul>
        )}
        {tags.next && (
          <div class="pager">
            <a class="button" href={`/r/${name}?${new URLSearchParams({ ...(order === "pulled" && { sort: "pulled" }), cursor: tags.next })}`}>
              Older tags
            </a>
          </div>
        )}
      </section>
    </>
  );
}
