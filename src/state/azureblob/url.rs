//! Where the state lives in Blob Storage: a container's URL taken apart and checked (account
//! and container naming rules), the prefix below it, and SAS signatures masked in messages.

use reqwest::Url;

use crate::remote::http;

/// Why a container URL or a prefix cannot be used. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("`{input}` is not a URL: {reason}")]
    NotUrl { input: String, reason: String },
    /// Plain http to a host other than loopback, or a scheme other than http(s).
    #[error(transparent)]
    Insecure(#[from] http::UrlError),
    /// The URL has a query or a fragment (`url` is shown without them: a SAS stays out).
    #[error(
        "`{url}` has a query; write the container's URL alone, and a SAS token in `sasToken` as a secret reference"
    )]
    Query { url: String },
    #[error("the URL holds a user name or password; remove it")]
    Credentials,
    #[error("`{0}` is not an emulator container URL: write http://127.0.0.1:PORT/ACCOUNT/CONTAINER")]
    NotEmulatorContainer(String),
    #[error("`{0}` is not a container URL: write https://ACCOUNT.blob.core.windows.net/CONTAINER")]
    NotContainer(String),
    #[error("`{0}` is not a storage account name (3 to 24 lower-case letters and digits)")]
    Account(String),
    #[error(
        "`{0}` is not a container name (3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)"
    )]
    Container(String),
    #[error(
        "`{0}` is not a prefix: write folder names of letters, digits, `.`, `_` and `-` separated by `/`, for example prod/identity"
    )]
    Prefix(String),
}

/// A container's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUrl {
    /// Up to and including the container, without a trailing slash or a query.
    pub base: Url,
    pub account: String,
    pub container: String,
}

impl ContainerUrl {
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER` (the account is the host's first
    /// label), or an emulator's `http://127.0.0.1:PORT/ACCOUNT/CONTAINER` (when the host is an
    /// IP address or `localhost`, the account is the path's first segment). The message of an
    /// error says what to write instead.
    pub fn parse(s: &str) -> Result<ContainerUrl, LocationError> {
        let url = s
            .trim()
            .parse::<Url>()
            .map_err(|e| LocationError::NotUrl { input: s.to_string(), reason: e.to_string() })?;
        http::check_url(&url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(LocationError::Query { url: without_query(&url) });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(LocationError::Credentials);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let segments: Vec<&str> =
            url.path_segments().map(|s| s.filter(|p| !p.is_empty()).collect()).unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let path_style = bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok();
        let (account, container) = match (path_style, segments.as_slice()) {
            (true, [account, container]) => (account.to_string(), container.to_string()),
            (false, [container]) => (host.split('.').next().unwrap_or_default().to_string(), container.to_string()),
            (true, _) => return Err(LocationError::NotEmulatorContainer(s.to_string())),
            (false, _) => return Err(LocationError::NotContainer(s.to_string())),
        };
        check_account(&account)?;
        check_container(&container)?;
        let mut base = url.clone();
        let path = if path_style { format!("/{account}/{container}") } else { format!("/{container}") };
        base.set_path(&path);
        Ok(ContainerUrl { base, account, container })
    }
}

/// Storage account names: 3 to 24 lower-case letters and digits.
fn check_account(a: &str) -> Result<(), LocationError> {
    let ok = (3..=24).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok { Ok(()) } else { Err(LocationError::Account(a.to_string())) }
}

/// Container names: 3 to 63 lower-case letters, digits and single hyphens, starting and ending
/// with a letter or digit.
fn check_container(c: &str) -> Result<(), LocationError> {
    let b = c.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || *x == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !c.contains("--");
    if ok { Ok(()) } else { Err(LocationError::Container(c.to_string())) }
}

/// A prefix as written (`prod/identity`, `prod/identity/`) as it is used: `""` or a folder
/// ending in `/`. Letters, digits, `.`, `_`, `-` and `/` between non-empty segments, none of
/// them `.` or `..`.
pub fn normalize_prefix(p: &str) -> Result<String, LocationError> {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let bad = || LocationError::Prefix(p.to_string());
    if t.len() > 512 || t.starts_with('/') {
        return Err(bad());
    }
    for seg in t.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(bad());
        }
    }
    Ok(format!("{t}/"))
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Masks the value of every `sig=` parameter in `text` (an error from the HTTP client may quote
/// the URL with its SAS).
pub fn mask_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find("sig=") {
        out.push_str(&rest[..i + 4]);
        let after = &rest[i + 4..];
        let end = after
            .find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str("(sensitive)");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
