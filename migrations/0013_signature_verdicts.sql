-- Signature verdicts (README: "Signatures"): what checking a manifest's cosign and Notation signatures against
-- SIGNATURE_TRUST concluded, one row per signed manifest, read by the tag API and the UI (and, later, pull policies)
-- with one seek. A manifest without signatures has no row: it is unsigned. A row is used only while it is current:
-- `fingerprint` is that of the keys and roots trusted for the repository when it was computed, `inputs` lists the
-- signatures it examined (referrer digests, then the sha256-<hex>.sig tag's digest), and `recheck_at` is when a
-- certificate or signature it relied on expires; a reader whose configuration, signatures or clock disagree
-- computes it again (src/signatures/verdicts.ts). Rows of deleted manifests are left: a re-push of the same digest
-- finds a row still correct, or one its inputs no longer match.
CREATE TABLE signature_verdicts (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('verified', 'invalid')),
  -- JSON: [{format, signature, signer}] for each signature that verified.
  signers TEXT NOT NULL,
  -- JSON: [{format, signature, reason}] for each that did not.
  problems TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  inputs TEXT NOT NULL,
  -- Epoch milliseconds; NULL when nothing it relied on expires.
  recheck_at INTEGER,
  checked_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
