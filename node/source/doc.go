// Package source is the back-to-source HTTP(S) client of the daemon: it
// fetches content from its origin when no peer has a piece, as whole bodies
// or as exact byte ranges, possibly concurrently, and resumes after an
// interruption with If-Range.
//
// The origin is not trusted to behave, and its URL is not trusted to be
// harmless:
//
//   - Bodies are length-checked: fewer bytes than announced (or requested)
//     end in io.ErrUnexpectedEOF, more in ErrInvalidResponse. A range reply is
//     accepted only when its Content-Range is exactly the requested range;
//     a 200 reply to a range request is never mistaken for the range.
//   - Server-side request forgery: every connection is checked at dial time
//     on the resolved IP address (so DNS rebinding does not help), and
//     loopback, link-local (including 169.254.169.254), private, unique-local,
//     CGNAT, multicast, unspecified and reserved addresses, also in their
//     IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms, are refused unless
//     inside WithAllowedNetworks.
//   - Proxies: none. HTTP_PROXY and friends are ignored on purpose, because
//     a proxy resolves and dials the destination itself, out of reach of the
//     dial-time address check.
//   - Redirects: at most 5, only to the original host name or to hosts given
//     with WithRedirectHosts, never from https to http; Authorization and
//     Cookie headers are dropped for the rest of the chain as soon as a hop
//     leaves the original host and port.
//   - TLS certificates are always verified; WithRootCAs and WithCAFiles add
//     trust, nothing removes verification.
//   - Secrets stay out of logs and errors: headers are never logged and URLs
//     pass through RedactURL (no userinfo, no query values).
//
// Transient failures (5xx, 429, connection errors, timeouts) are retried with
// capped exponential backoff and full jitter, honouring Retry-After up to the
// cap, before the response starts; a body that fails midway is reported to
// the caller, who resumes with OpenRange.
package source
