// Package mirror is the OCI registry mirror of dfnode: the pull side of the
// OCI distribution API (GET|HEAD /v2/, /v2/<name>/manifests/<reference> and
// /v2/<name>/blobs/<digest>) that containerd (hosts.toml) and Docker
// (registry-mirrors) point at, so that a fleet pulling the same image fetches
// each layer from the registry about once.
//
// # Routing
//
// The upstream registry of a request is, in order: the ?ns=<registry[:port]>
// query parameter containerd appends, the request's Host header when
// Config.Mappings names it, or Config.DefaultRegistry (docker.io, for Docker's
// registry-mirrors, which sends no ns). Only registries listed in
// Config.Registries are served: any other one is answered 404 NAME_UNKNOWN
// without a single outbound connection. The mirror is not an open proxy.
//
// # Data path
//
// Blobs and manifests addressed by digest are content tasks of the download
// conductor (task ID = the digest): they come from peers, from a seed peer, or
// from the registry through this node's back-to-source client, and every piece
// is verified before it is served. Manifests are small: they are downloaded
// and verified completely, then checked (size and entry caps, no document that
// is both an index and an image manifest, mediaType equal to the Content-Type,
// no duplicate or case-folded keys) before the first byte is sent. Blobs are
// streamed as verified pieces arrive; headers are sent once the size is known,
// the last byte is held back until the whole-content digest matched, and a
// download that fails after the headers aborts the connection, so a client
// never mistakes a cut body for a complete one. Blobs up to
// Config.SmallBlobSize are verified completely before the headers, so their
// failures are clean error statuses a runtime falls back on.
//
// Tags are resolved at the upstream registry only (HEAD, or GET when the
// registry does not answer HEAD with a digest), with the caller's
// credentials, never from peers; the manifest is then served by digest.
//
// # Credentials and private images
//
// The caller's Authorization header goes only to the registry the request is
// for and to that registry's token endpoint (its realm must be the registry
// host or one of Registry.AuthHosts). A Bearer challenge is answered with the
// token dance (realm, service, scope=repository:<name>:pull); tokens are
// cached per registry, scope and credential (keyed by an HMAC of the
// credential, never the credential itself) until they expire. Anonymous
// tokens are fetched the same way, so public images of registries that want a
// token even for anonymous pulls work. The token of the request that starts a
// content task is the task's back-to-source Authorization header; it is used
// by this node's source client only (never sent to peers or to the scheduler,
// never logged). WrapOrigin gives the back-to-source client the same token
// dance for downloads that carry no credentials (seed peers triggered by a
// scheduler) and refreshes expired tokens.
//
// Nothing is served from the cluster before the upstream registry confirmed
// that the caller may read that digest in that repository: a HEAD on the
// manifest or blob with the caller's credentials (or anonymously), or the
// resolution of a tag or the fetch of a confirmed manifest that references
// the digest. Confirmations are cached for Config.AccessTTL per registry,
// repository, digest and credential hash; for repositories matching
// Registry.PublicRepositories they are shared by every caller and cached for
// Config.PublicAccessTTL. A digest is never served through a repository the
// upstream has not confirmed holds it, so naming a public repository in the
// path does not unlock a private layer.
package mirror
