import type { Verdict } from "../signatures/verdicts";
import { shortDigest } from "./format";

const FORMAT_LABELS = { cosign: "cosign", notation: "Notation" } as const;

/** A tag row's signature badge: signed (by whom), invalid (why, on hover), not yet checked; nothing when unsigned. */
export function SignatureBadge(props: { verdict: Verdict | undefined }) {
  const { verdict } = props;
  if (!verdict || verdict.status === "unsigned") return null;
  if (verdict.status === "verified") {
    const signers = verdict.signers.map((signer) => signer.signer);
    return (
      <span class="badge signed" title={`signature verified: ${signers.join("; ")}`}>
        signed · {signers[0]}
      </span>
    );
  }
  if (verdict.status === "invalid") {
    return (
      <span class="badge signature-invalid" title={verdict.problems.map((problem) => problem.reason).join("; ")}>
        signature invalid
      </span>
    );
  }
  return <span class="badge signature-pending">signature not yet checked</span>;
}

/** The tag or manifest page's account of its signatures: who signed it, and what failed and why. */
export function SignatureSection(props: { repository: string; verdict: Verdict }) {
  const { verdict, repository } = props;
  const link = (digest: string) => (
    <a href={`/r/${repository}/-/manifests/${digest}`}>
      <code>{shortDigest(digest)}</code>
    </a>
  );
  return (
    <section class="card" id="signature" data-status={verdict.status}>
      <h2>Signature</h2>
      {verdict.status === "unsigned" && <p class="muted">Unsigned: no cosign or Notation signature is attached to this manifest.</p>}
      {verdict.status === "pending" && <p class="muted">{verdict.signatures} signature(s) attached, not checked yet: reload in a moment.</p>}
      {verdict.status === "verified" && (
        <p>
          <span class="badge signed">Verified</span> against the keys and roots SIGNATURE_TRUST lists for this repository.
        </p>
      )}
      {verdict.status === "invalid" && (
        <p>
          <span class="badge signature-invalid">Invalid</span> no attached signature verifies against the keys and roots SIGNATURE_TRUST lists for this
          repository.
        </p>
      )}
      {(verdict.status === "verified" || verdict.status === "invalid") && (
        <ul class="rows">
          {verdict.status === "verified" &&
            verdict.signers.map((signer) => (
              <li data-signer={signer.signer}>
                <div class="grow">
                  <strong>{signer.signer}</strong>
                  <div class="meta">
                    <span>{FORMAT_LABELS[signer.format]} signature</span>
                    {link(signer.signature)}
                  </div>
                </div>
              </li>
            ))}
          {verdict.problems.map((problem) => (
            <li data-problem>
              <div class="grow">
                <span class="badge signature-invalid">not verified</span> {problem.reason}
                <div class="meta">
                  <span>{FORMAT_LABELS[problem.format]} signature</span>
                  {problem.signature && link(problem.signature)}
                </div>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
