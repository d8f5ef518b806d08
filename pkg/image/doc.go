// Package image brings container images to this machine and keeps them:
// references, a registry client (pull, push, search, login), a content
// store with tags, and docker/OCI archives.
//
// Two nouns do the work. A Client talks to registries and holds nothing
// but its options; a Store keeps blobs, unpacked layers and the index of
// tags on disk. A pull is the client handing the store an image to add:
//
//	store, _ := image.Open(root, image.Options{})
//	img, _ := image.NewClient(image.ClientOptions{}).Pull(ctx, store, "busybox", image.PullOptions{})
//
// # The distribution API
//
// A registry speaks HTTP (the OCI distribution spec): GET /v2/ to find how
// to authenticate (a 401 with WWW-Authenticate: Bearer or Basic), then
// GET /v2/<repo>/manifests/<tag> with Accept headers naming the manifest
// types the client understands, then GET /v2/<repo>/blobs/<digest> for the
// config and each layer. Push is the reverse: HEAD each blob to skip those
// the registry has, POST+PUT the others (or POST ?mount=&from= to copy a
// blob from another repository without sending it), PUT the manifest last.
// Everything is named by its sha256 digest, so everything can be checked:
// `minictr --explain pull` prints each request with the curl that repeats it.
//
// # What is verified
//
// Nothing enters the store unverified. Manifests and configs are capped
// (MaxManifestSize) where they are read: a registry's response in the
// client's transport, before go-containerregistry reads it, and an
// archive's documents by their tar headers; a document that is both an
// index and a manifest is refused; the config must match the digest and
// size the manifest gives it and list one diff_id per layer; each layer is
// hashed compressed (against the manifest) and uncompressed (against the
// config's diff_id) in the same pass that unpacks it, and its unpacked size
// is capped so that a gzip bomb stops early.
//
// # On disk
//
// See Store for the layout. Each layer is unpacked into its own directory
// named by its chain ID (layer.Unpack), so images that share base layers
// share directories; pkg/snapshot stacks them into a container's root.
// Writes are atomic (temp + rename(2)). Slow work (downloading, unpacking,
// reading an archive) happens in a work directory of tmp/ that names its
// owner, without any lock; only the renames into place and the index write
// hold the flock(2) on the store's lock file, so two pulls run side by
// side. Reads take no lock.
//
// # Host side effects
//
// Files under the store root only (the engine passes $MINICTR_ROOT/image);
// `minictr rmi` and `minictr image prune` remove them. Login writes docker's
// config.json ($DOCKER_CONFIG or ~/.docker), or its credential helper;
// `minictr logout` removes the entry. The package never prints: progress
// goes to a Progress sink, steps to a trace.Tracer.
//
// Man pages: flock(2) (the store lock, and who holds work directories and leases), rename(2); the OCI image and distribution specs;
// docker's "docker-archive" (docker save) format.
package image
