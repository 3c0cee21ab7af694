// The media types of manifests (OCI image-spec, Docker image manifest v2 schema 2) and of the empty descriptor.
// It imports nothing: the command-line tools (cli/) load it as it is, with Node's type stripping.
export const MediaTypes = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
} as const;

/** Every kind of manifest a registry stores: what a client accepts to be served any of them. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaTypes.ociIndex,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
];
