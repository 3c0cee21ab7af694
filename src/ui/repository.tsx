import type { Page, RepositoryHit } from "../search/search";
import type { TagRecord } from "../storage/search-records";
import { formatBytes, isoTime, shortDigest, timeAgo } from "./format";
import { ArtifactBadge, CopyButton, Notice, Pull } from "./layout";

export function RepositoryPage(props: { repository: RepositoryHit; tags: Page<TagRecord>; host: string; deleted: string | null; cursor: string | null }) {
  const { repository, tags, host } = props;
  const name = repository.name;
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
          <span class="sub"> · newest first</span>
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
                  </span>
                  <div class="meta">
                    <code title={tag.digest}>{shortDigest(tag.digest)}</code>
                    <span>{formatBytes(tag.size)}</span>
                    <span title={isoTime(tag.pushedAt)}>pushed {timeAgo(tag.pushedAt)}</span>
                  </div>
                </div>
                <CopyButton text={`docker pull ${host}/${name}:${tag.name}`} label="Copy pull" />
              </li>
            ))}
          </ul>
        )}
        {tags.next && (
          <div class="pager">
            <a class="button" href={`/r/${name}?${new URLSearchParams({ cursor: tags.next })}`}>
              Older tags
            </a>
          </div>
        )}
      </section>
    </>
  );
}
