//! Reaching remote services: the one HTTP client setup, retries, bounded bodies, secret
//! references, and Entra ID access tokens.
//!
//! Providers (SCIM, Graph, Dataverse, F&O) and credential sinks (Key Vault), and the drift
//! webhook, all speak HTTP through this module, so one set of rules holds everywhere: https
//! only (plain http to loopback alone), TLS 1.2 at least with verified certificates, no
//! redirects, bounded bodies and retries, and secrets that never print themselves.
//!
//! It knows nothing of plans or providers: it sits just above `model`.

pub mod entra;
pub mod http;
pub mod redact;

pub use entra::{TokenError, TokenSource};
pub use http::{HttpError, RetryPolicy, SecretError, ServiceError, UrlError, resolve_secret};
