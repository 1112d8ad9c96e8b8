//! Resolving `keyward.yaml` into [`Settings`]: which fields each provider needs, secret
//! references, transport security.

use std::collections::BTreeMap;

use super::{Origins, Sink, parse_as};
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::config::{
    AzureBlobState, BlobAuth, ClientCredential, ConfigFile, Connection, LdapConnection, LdapDisable, LdapFlavor,
    SecretAllowList, Settings, StateBackendKind, StateFile, StateSettings, Target, TargetFile,
};
use crate::model::{Name, ProviderKind, SecretRef};

pub const DEFAULT_AUDIT_PATH: &str = ".keyward/audit.jsonl";

pub(super) fn resolve(sink: &mut Sink, origins: &mut Origins) -> Option<Settings> {
    let loaded = sink.loaded;
    let docs = &loaded.settings;
    if docs.is_empty() {
        return None; // The loader already reported the empty or unreadable file.
    }
    if docs.len() > 1 {
        sink.at(
            &docs[1],
            &[],
            Diagnostic::error("multiple-documents", "keyward.yaml holds more than one document")
                .help("keep only the settings in keyward.yaml; put resources in other files"),
        );
    }
    origins.settings = Some(0);
    let doc = &docs[0];
    if !super::within_limits(sink, doc) {
        return None;
    }
    let file: ConfigFile = parse_as(sink, doc)?;
    let errors_before = sink.diags.len();
    let at = |sink: &mut Sink, path: &[PathSeg], d: Diagnostic| sink.at(doc, path, d);

    if file.version != 1 {
        at(
            sink,
            &["version".into()],
            Diagnostic::error("unsupported-version", format!("unsupported version {}", file.version))
                .help("this keyward reads `version: 1`"),
        );
    }

    let mut targets = BTreeMap::new();
    for (name, t) in &file.targets {
        let base: Vec<PathSeg> = vec!["targets".into(), name.as_str().into()];
        if let Some(target) = resolve_target(sink, doc, &base, name, t) {
            targets.insert(name.clone(), target);
        }
    }

    let state = match &file.state {
        None => Some(StateSettings::Local),
        Some(st) => resolve_state(sink, doc, st),
    };

    let ownership = file.ownership.clone().unwrap_or_default();
    let notify_webhook = file
        .notify
        .as_ref()
        .and_then(|n| n.webhook.as_ref())
        .and_then(|w| secret(sink, doc, &["notify".into(), "webhook".into()], w));
    if let Some(min) = file.guards.as_ref().and_then(|g| g.min_admins.as_ref())
        && min.count == 0
    {
        at(
            sink,
            &["guards".into(), "minAdmins".into(), "count".into()],
            Diagnostic::warning("guard-disabled", "minAdmins.count is 0, so the guard never trips"),
        );
    }
    if let Some(p) = file.audit.as_ref().and_then(|a| a.path.as_deref()) {
        confined(sink, doc, &["audit".into(), "path".into()], "audit.path", p);
    }
    if let Some(allowed) = &file.secrets {
        let refused = check_secrets(&sink.secret_uses, allowed, "keyward.yaml's own");
        sink.diags.extend(refused);
    }
    let new_errors = sink.diags[errors_before..].iter().any(Diagnostic::is_error);
    if new_errors {
        return None;
    }
    if file.secrets.is_none() && !sink.secret_uses.is_empty() {
        undeclared_secrets(sink, doc);
    }
    Some(Settings {
        targets,
        scope: ownership.scope,
        protected: ownership.protected.iter().map(|p| p.to_ascii_lowercase()).collect(),
        removed_users: file.lifecycle.map(|l| l.removed_users).unwrap_or_default(),
        max_deletes: file.guards.as_ref().and_then(|g| g.max_deletes),
        max_deletes_window: file
            .guards
            .as_ref()
            .and_then(|g| g.max_deletes_window)
            .unwrap_or(crate::model::config::DEFAULT_MAX_DELETES_WINDOW),
        min_admins: file.guards.and_then(|g| g.min_admins),
        audit_path: file.audit.and_then(|a| a.path).unwrap_or_else(|| DEFAULT_AUDIT_PATH.to_string()),
        notify_webhook,
        policy: file.policy.unwrap_or_default(),
        state: state?,
        secrets: file.secrets,
        governance: file.governance.unwrap_or_default(),
    })
}

/// Reports `value` (the path of `field`) unless it stays inside the configuration folder (see
/// [`crate::atomic::confined`]); says whether it does.
fn confined(sink: &mut Sink, doc: &crate::load::Document, at: &[PathSeg], field: &str, value: &str) -> bool {
    match crate::atomic::confined(value) {
        Ok(_) => true,
        Err(e) => {
            sink.at(
                doc,
                at,
                Diagnostic::error("path-outside-configuration", format!("{field}: {e}")).help(
                    "keyward writes only below the configuration folder; write a relative path such as .keyward/NAME",
                ),
            );
            false
        }
    }
}

/// Where keyward.yaml uses a secret reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    pub reference: SecretRef,
    pub location: super::Location,
    /// The field, such as `targets.okta.token`.
    pub field: String,
}

/// The secret references of keyward.yaml that `allowed` does not allow, as errors at their
/// line. `whose` says whose list it is, for the message.
pub fn check_secrets(uses: &[SecretUse], allowed: &SecretAllowList, whose: &str) -> Vec<Diagnostic> {
    uses.iter()
        .filter(|u| !allowed.allows(&u.reference))
        .map(|u| {
            Diagnostic::error(
                "secret-not-allowed",
                format!("secret reference {} is not allowed by {whose} `secrets:` list", u.reference),
            )
            .in_file(&u.location.file)
            .at(u.location.line, u.location.column)
            .field(u.field.clone())
            .help(match u.reference {
                SecretRef::Env(_) => "add the variable's name (or a PREFIX_*) to `secrets.env` in keyward.yaml, in a change of its own merged first",
                SecretRef::File(_) => "read files only below a directory listed in `secrets.files`, written without `..`; add the directory in a change of its own merged first",
            })
        })
        .collect()
}

/// Under a base revision without a `secrets:` list: the references the base itself does not
/// use, as errors at their line.
pub fn check_secrets_against_uses(uses: &[SecretUse], base: &[SecretUse]) -> Vec<Diagnostic> {
    uses.iter()
        .filter(|u| !base.iter().any(|b| b.reference == u.reference))
        .map(|u| {
            Diagnostic::error(
                "secret-not-allowed",
                format!(
                    "secret reference {} is new in this change; the base revision has no `secrets:` list, so only the references it already uses are allowed",
                    u.reference
                ),
            )
            .in_file(&u.location.file)
            .at(u.location.line, u.location.column)
            .field(u.field.clone())
            .help("declare the secrets in keyward.yaml (`secrets: {env: [...], files: [...]}`) in a change of its own merged first")
        })
        .collect()
}

/// keyward.yaml uses secret references without a `secrets:` list: allowed, with a warning.
fn undeclared_secrets(sink: &mut Sink, doc: &crate::load::Document) {
    sink.at(
        doc,
        &[],
        Diagnostic::warning(
            "secrets-undeclared",
            "keyward.yaml uses secret references but has no `secrets:` list of the ones it may use",
        )
        .help(
            "add `secrets: {env: [NAMES or PREFIX_*], files: [DIRECTORIES]}`; under `plan --base`, a \
             configuration without it may use only the references its base revision already uses",
        ),
    );
}

/// `state:`: the backend and the fields it takes; for `azureblob`, a container URL, a prefix
/// and exactly one way to authenticate.
fn resolve_state(sink: &mut Sink, doc: &crate::load::Document, st: &StateFile) -> Option<StateSettings> {
    let path = |f: &str| -> Vec<PathSeg> { vec!["state".into(), f.into()] };
    let backend = st.backend;
    let set: [(&str, bool); 11] = [
        ("url", st.url.is_some()),
        ("prefix", st.prefix.is_some()),
        ("accountKey", st.account_key.is_some()),
        ("sasToken", st.sas_token.is_some()),
        ("tenant", st.tenant.is_some()),
        ("clientId", st.client_id.is_some()),
        ("clientSecret", st.client_secret.is_some()),
        ("certificate", st.certificate.is_some()),
        ("federatedTokenFile", st.federated_token_file.is_some()),
        ("authority", st.authority.is_some()),
        ("caFile", st.ca_file.is_some()),
    ];
    if backend == StateBackendKind::Local {
        let mut ok = true;
        for (field, is_set) in set {
            if is_set {
                sink.at(
                    doc,
                    &path(field),
                    Diagnostic::error("field-not-for-backend", format!("`{field}` does not apply to state backend `local`"))
                        .help("the local state lives beside the audit log (audit.path); set `backend: azureblob` to keep it in Azure Blob Storage"),
                );
                ok = false;
            }
        }
        return ok.then_some(StateSettings::Local);
    }
    let mut ok = true;
    let url = match &st.url {
        None => {
            sink.at(
                doc,
                &["state".into()],
                Diagnostic::error("missing-field", "state backend `azureblob` needs `url`")
                    .field("state.url")
                    .help("write the container's URL: https://ACCOUNT.blob.core.windows.net/CONTAINER"),
            );
            None
        }
        Some(u) => match crate::state::azureblob::ContainerUrl::parse(u) {
            Ok(_) => Some(u.trim().to_string()),
            Err(e) => {
                let insecure = matches!(e, crate::state::azureblob::LocationError::Insecure(_));
                let code = if insecure { "insecure-url" } else { "invalid-url" };
                sink.at(
                    doc,
                    &path("url"),
                    Diagnostic::error(code, e.to_string()).help(
                        "write https://ACCOUNT.blob.core.windows.net/CONTAINER, or an emulator's \
                         http://127.0.0.1:PORT/ACCOUNT/CONTAINER (plain http only on loopback)",
                    ),
                );
                None
            }
        },
    };
    let prefix = match crate::state::azureblob::normalize_prefix(st.prefix.as_deref().unwrap_or("")) {
        Ok(p) => Some(p),
        Err(e) => {
            sink.at(
                doc,
                &path("prefix"),
                Diagnostic::error("invalid-prefix", e.to_string()).help("for example prod/identity"),
            );
            None
        }
    };
    let entra_fields = [
        st.tenant.is_some(),
        st.client_id.is_some(),
        st.client_secret.is_some(),
        st.certificate.is_some(),
        st.federated_token_file.is_some(),
        st.authority.is_some(),
    ];
    let mut ways: Vec<&str> = Vec::new();
    if st.account_key.is_some() {
        ways.push("accountKey");
    }
    if st.sas_token.is_some() {
        ways.push("sasToken");
    }
    if entra_fields.iter().any(|b| *b) {
        ways.push("Entra ID (tenant, clientId and one of clientSecret, certificate, federatedTokenFile)");
    }
    let auth = match ways.as_slice() {
        ["accountKey"] => secret(sink, doc, &path("accountKey"), st.account_key.as_deref()?).map(BlobAuth::AccountKey),
        ["sasToken"] => secret(sink, doc, &path("sasToken"), st.sas_token.as_deref()?).map(BlobAuth::SasToken),
        [_] => {
            let mut need = |field: &str, v: &Option<String>| -> Option<String> {
                match v {
                    Some(s) if !s.trim().is_empty() => Some(s.clone()),
                    _ => {
                        sink.at(
                            doc,
                            &["state".into()],
                            Diagnostic::error("missing-field", format!("state with Entra ID authentication needs `{field}`"))
                                .field(format!("state.{field}"))
                                .help("Entra ID takes tenant, clientId and one of clientSecret, certificate, federatedTokenFile"),
                        );
                        ok = false;
                        None
                    }
                }
            };
            let tenant = need("tenant", &st.tenant);
            let client_id = need("clientId", &st.client_id);
            let credential = client_credential(
                sink,
                doc,
                &["state".into()],
                "state with Entra ID authentication",
                st.client_secret.as_deref(),
                st.certificate.as_deref(),
                st.federated_token_file.as_deref(),
            );
            if let Some(a) = &st.authority
                && !(a.starts_with("https://") || (a.starts_with("http://") && is_loopback_url(a)))
            {
                sink.at(
                    doc,
                    &path("authority"),
                    Diagnostic::error("insecure-url", format!("`{a}` is not an https URL"))
                        .help("use https://; plain http:// is allowed only on loopback (localhost, 127.0.0.1, ::1)"),
                );
                ok = false;
            }
            Some(BlobAuth::Entra {
                tenant: tenant?,
                client_id: client_id?,
                credential: credential?,
                authority: st.authority.clone(),
            })
        }
        [] => {
            sink.at(
                doc,
                &["state".into()],
                Diagnostic::error("credential-choice", "state backend `azureblob` needs a way to authenticate")
                    .field("state")
                    .help("write one of accountKey or sasToken (as ${env:NAME} or ${file:PATH}), or Entra ID: tenant, clientId and one of clientSecret, certificate, federatedTokenFile"),
            );
            None
        }
        _ => {
            sink.at(
                doc,
                &["state".into()],
                Diagnostic::error(
                    "credential-choice",
                    format!("state takes one way to authenticate, not {}", ways.join(" and ")),
                )
                .field("state")
                .help("keep one of accountKey, sasToken or the Entra ID fields"),
            );
            None
        }
    };
    if !ok {
        return None;
    }
    Some(StateSettings::AzureBlob(AzureBlobState {
        url: url?,
        prefix: prefix?,
        auth: auth?,
        ca_file: st.ca_file.clone(),
    }))
}

fn secret(sink: &mut Sink, doc: &crate::load::Document, path: &[PathSeg], value: &str) -> Option<SecretRef> {
    match SecretRef::parse(value) {
        Ok(r) => {
            let location = super::doc_location(sink.loaded, doc, path);
            let field = crate::load::locate::DisplayPath(path).to_string();
            sink.secret_uses.push(SecretUse { reference: r.clone(), location, field });
            Some(r)
        }
        Err(e) => {
            sink.at(
                doc,
                path,
                Diagnostic::error("literal-secret", e.to_string())
                    .help("put the value in an environment variable and write ${env:NAME}, or in a file and write ${file:PATH}"),
            );
            None
        }
    }
}

/// Exactly one of `clientSecret`, `certificate`, `federatedTokenFile` (how a client proves
/// itself to Entra ID), resolved. `base` is the block's path (`targets.NAME`, `state`); `who`
/// starts the message.
fn client_credential(
    sink: &mut Sink,
    doc: &crate::load::Document,
    base: &[PathSeg],
    who: &str,
    client_secret: Option<&str>,
    certificate: Option<&str>,
    federated_token_file: Option<&str>,
) -> Option<ClientCredential> {
    let at = |field: &str| {
        let mut v = base.to_vec();
        v.push(field.into());
        v
    };
    match (client_secret, certificate, federated_token_file) {
        (Some(s), None, None) => secret(sink, doc, &at("clientSecret"), s).map(ClientCredential::Secret),
        (None, Some(c), None) => secret(sink, doc, &at("certificate"), c).map(ClientCredential::Certificate),
        (None, None, Some(f)) => Some(ClientCredential::FederatedTokenFile(f.to_string())),
        _ => {
            sink.at(
                doc,
                base,
                Diagnostic::error(
                    "credential-choice",
                    format!("{who} needs exactly one of clientSecret, certificate, federatedTokenFile"),
                )
                .field(crate::load::locate::DisplayPath(base).to_string())
                .help("for GitHub Actions OIDC and Kubernetes workload identity, write federatedTokenFile"),
            );
            None
        }
    }
}

/// `user@domain` or `DOMAIN\user`, as Active Directory takes for a simple bind.
fn is_ad_bind_name(s: &str) -> bool {
    let plain = |p: &str| !p.is_empty() && !p.contains(['=', ',', '@', '\\']) && !p.chars().any(char::is_whitespace);
    match (s.split_once('@'), s.split_once('\\')) {
        (Some((user, domain)), None) => plain(user) && plain(domain),
        (None, Some((domain, user))) => plain(domain) && plain(user),
        _ => false,
    }
}

/// Whether `s` is an LDAP attribute description: a descriptor (a letter, then letters, digits
/// and hyphens) or a numeric OID (RFC 4512 §1.4).
pub fn is_attribute_name(s: &str) -> bool {
    let descr =
        s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    descr || oid
}

/// Whether a URL's host is the loopback interface.
pub fn is_loopback_url(url: &str) -> bool {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn resolve_target(
    sink: &mut Sink,
    doc: &crate::load::Document,
    base: &[PathSeg],
    name: &Name,
    t: &TargetFile,
) -> Option<Target> {
    let p = t.provider;
    let path = |f: &str| {
        let mut v = base.to_vec();
        v.push(f.into());
        v
    };
    // Which optional fields each provider takes, beside provider, users and caFile.
    let set: [(&str, bool); 21] = [
        ("path", t.path.is_some()),
        ("url", t.url.is_some()),
        ("token", t.token.is_some()),
        ("tenant", t.tenant.is_some()),
        ("clientId", t.client_id.is_some()),
        ("clientSecret", t.client_secret.is_some()),
        ("certificate", t.certificate.is_some()),
        ("federatedTokenFile", t.federated_token_file.is_some()),
        ("endpoint", t.endpoint.is_some()),
        ("authority", t.authority.is_some()),
        ("startTls", t.start_tls.is_some()),
        ("bindDn", t.bind_dn.is_some()),
        ("password", t.password.is_some()),
        ("usersBase", t.users_base.is_some()),
        ("groupsBase", t.groups_base.is_some()),
        ("flavor", t.flavor.is_some()),
        ("userKey", t.user_key.is_some()),
        ("disable", t.disable.is_some()),
        ("accessLog", t.access_log.is_some()),
        ("federatedDomains", t.federated_domains.is_some()),
        ("businessUnit", t.business_unit.is_some()),
    ];
    let entra: &[&str] = &["tenant", "clientId", "clientSecret", "certificate", "federatedTokenFile", "authority"];
    let allowed: Vec<&str> = match p {
        ProviderKind::File => vec!["path"],
        ProviderKind::Scim => vec!["url", "token"],
        ProviderKind::Graph => [entra, &["endpoint", "federatedDomains"]].concat(),
        ProviderKind::Dataverse => [entra, &["url", "businessUnit"]].concat(),
        ProviderKind::Fno => [entra, &["url"]].concat(),
        ProviderKind::Ldap => {
            vec![
                "url",
                "startTls",
                "bindDn",
                "password",
                "usersBase",
                "groupsBase",
                "flavor",
                "userKey",
                "disable",
                "accessLog",
            ]
        }
    };
    let mut ok = true;
    for (field, is_set) in set {
        if is_set && !allowed.contains(&field) {
            sink.at(
                doc,
                &path(field),
                Diagnostic::error("field-not-for-provider", format!("`{field}` does not apply to provider `{p}`"))
                    .help(format!("provider `{p}` takes: {}", allowed.join(", "))),
            );
            ok = false;
        }
    }
    let require = |sink: &mut Sink, field: &str, v: &Option<String>| -> Option<String> {
        match v {
            Some(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                sink.at(
                    doc,
                    base,
                    Diagnostic::error("missing-field", format!("target `{name}` (provider `{p}`) needs `{field}`"))
                        .field(format!("targets.{name}.{field}")),
                );
                None
            }
        }
    };
    let https = |sink: &mut Sink, field: &str, url: &str, schemes: &[&str]| -> bool {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some(s) if schemes.contains(&s) => true,
            Some("http") | Some("ldap") if is_loopback_url(url) => true,
            Some("ldap") if t.start_tls == Some(true) => true,
            _ => {
                sink.at(
                    doc,
                    &path(field),
                    Diagnostic::error("insecure-url", format!("`{url}` is not an {} URL", schemes.join(" or ")))
                        .help(match schemes {
                            ["https"] => "use https://; plain http:// is allowed only on loopback (localhost, 127.0.0.1, ::1)",
                            _ => "use ldaps://, or ldap:// with startTls: true; plain ldap:// is allowed only on loopback",
                        }),
                );
                false
            }
        }
    };
    let users = t.users.unwrap_or(p.default_users());
    let connection = match p {
        ProviderKind::File => {
            let p = require(sink, "path", &t.path)?;
            if !confined(sink, doc, &path("path"), "path", &p) {
                return None;
            }
            Connection::File { path: p }
        }
        ProviderKind::Scim => {
            let url = require(sink, "url", &t.url);
            let token = require(sink, "token", &t.token).and_then(|v| secret(sink, doc, &path("token"), &v));
            let url = url.filter(|u| https(sink, "url", u, &["https"]));
            Connection::Scim { url: url?, token: token? }
        }
        ProviderKind::Graph | ProviderKind::Dataverse | ProviderKind::Fno => {
            let tenant = require(sink, "tenant", &t.tenant);
            let client_id = require(sink, "clientId", &t.client_id);
            let credential = client_credential(
                sink,
                doc,
                base,
                &format!("target `{name}`"),
                t.client_secret.as_deref(),
                t.certificate.as_deref(),
                t.federated_token_file.as_deref(),
            );
            for field in ["endpoint", "authority"] {
                let v = if field == "endpoint" { &t.endpoint } else { &t.authority };
                if let Some(u) = v {
                    https(sink, field, u, &["https"]);
                }
            }
            match p {
                ProviderKind::Graph => Connection::Graph {
                    tenant: tenant?,
                    client_id: client_id?,
                    credential: credential?,
                    endpoint: t.endpoint.clone(),
                    authority: t.authority.clone(),
                    federated_domains: t
                        .federated_domains
                        .iter()
                        .flatten()
                        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                        .collect(),
                },
                _ => {
                    let url = require(sink, "url", &t.url).filter(|u| https(sink, "url", u, &["https"]));
                    let (url, tenant, client_id, credential) = (url?, tenant?, client_id?, credential?);
                    let authority = t.authority.clone();
                    if p == ProviderKind::Dataverse {
                        let business_unit = t.business_unit.clone().filter(|b| !b.trim().is_empty());
                        Connection::Dataverse { url, tenant, client_id, credential, authority, business_unit }
                    } else {
                        Connection::Fno { url, tenant, client_id, credential, authority }
                    }
                }
            }
        }
        ProviderKind::Ldap => {
            let url = require(sink, "url", &t.url).filter(|u| https(sink, "url", u, &["ldaps"]));
            let bind_dn = require(sink, "bindDn", &t.bind_dn);
            let password =
                require(sink, "password", &t.password).and_then(|v| secret(sink, doc, &path("password"), &v));
            let users_base = require(sink, "usersBase", &t.users_base);
            let groups_base = require(sink, "groupsBase", &t.groups_base);
            let flavor = t.flavor.unwrap_or_default();
            let default_key = if flavor == LdapFlavor::Ad { "sAMAccountName" } else { "uid" };
            let dn_ok = |sink: &mut Sink, field: &str, v: Option<String>| -> Option<String> {
                let v = v?;
                match crate::model::dn::Dn::parse(&v) {
                    Ok(_) => Some(v),
                    Err(e) => {
                        sink.at(
                            doc,
                            &path(field),
                            Diagnostic::error("invalid-dn", e.to_string())
                                .help("write a DN as in RFC 4514, for example ou=people,dc=example,dc=com"),
                        );
                        None
                    }
                }
            };
            // Active Directory also binds with `user@domain` (a UPN) and `DOMAIN\user`
            // ([MS-ADTS] "Simple Authentication").
            let bind_dn = match bind_dn {
                Some(b) if flavor == LdapFlavor::Ad && is_ad_bind_name(&b) => Some(b),
                b => dn_ok(sink, "bindDn", b),
            };
            let users_base = dn_ok(sink, "usersBase", users_base);
            let access_log = match (flavor, t.access_log.clone()) {
                (LdapFlavor::Ad, Some(_)) => {
                    sink.at(
                        doc,
                        &path("accessLog"),
                        Diagnostic::error("field-not-for-provider", "`accessLog` does not apply to flavor `ad`")
                            .help("Active Directory's change feed reads uSNChanged and deleted objects instead"),
                    );
                    None
                }
                (_, a) => Some(dn_ok(sink, "accessLog", a)),
            };
            let groups_base = dn_ok(sink, "groupsBase", groups_base);
            let user_key = t.user_key.clone().unwrap_or_else(|| default_key.to_string());
            let user_key = if is_attribute_name(&user_key) {
                Some(user_key)
            } else {
                sink.at(
                    doc,
                    &path("userKey"),
                    Diagnostic::error("invalid-attribute", format!("`{user_key}` is not an LDAP attribute name"))
                        .help("write an attribute name such as uid, cn, mail or sAMAccountName"),
                );
                None
            };
            let disable = match (flavor, &t.disable) {
                (LdapFlavor::Ad, None) => Some(LdapDisable::AccountControl),
                (LdapFlavor::Ad, Some(_)) => {
                    sink.at(
                        doc,
                        &path("disable"),
                        Diagnostic::error("field-not-for-provider", "`disable` does not apply to flavor `ad`").help(
                            "Active Directory accounts are disabled with the ACCOUNTDISABLE bit of userAccountControl",
                        ),
                    );
                    None
                }
                (LdapFlavor::Openldap, None) => Some(LdapDisable::Attribute {
                    name: LdapDisable::PPOLICY_ATTRIBUTE.into(),
                    value: LdapDisable::PPOLICY_LOCKED.into(),
                }),
                (LdapFlavor::Openldap, Some(d)) => {
                    let dpath = path("disable");
                    let bad = |sink: &mut Sink, field: &str, message: String, help: &str| {
                        let mut p = dpath.clone();
                        if !field.is_empty() {
                            p.push(field.into());
                        }
                        sink.at(doc, &p, Diagnostic::error("invalid-disable", message).help(help.to_string()));
                        None
                    };
                    let help = "write {moveTo: ou=disabled,dc=example,dc=com} or {attribute: NAME, value: VALUE}";
                    match (&d.move_to, &d.attribute, &d.value) {
                        (Some(m), None, None) => match crate::model::dn::Dn::parse(m) {
                            Ok(_) => Some(LdapDisable::MoveTo(m.clone())),
                            Err(e) => bad(sink, "moveTo", e.to_string(), help),
                        },
                        (None, Some(a), v) if is_attribute_name(a) => match v {
                            Some(v) if !v.is_empty() => {
                                Some(LdapDisable::Attribute { name: a.clone(), value: v.clone() })
                            }
                            None if a.eq_ignore_ascii_case(LdapDisable::PPOLICY_ATTRIBUTE) => {
                                Some(LdapDisable::Attribute {
                                    name: a.clone(),
                                    value: LdapDisable::PPOLICY_LOCKED.into(),
                                })
                            }
                            _ => {
                                bad(sink, "value", format!("`disable.attribute: {a}` needs a non-empty `value`"), help)
                            }
                        },
                        (None, Some(a), _) => {
                            bad(sink, "attribute", format!("`{a}` is not an LDAP attribute name"), help)
                        }
                        _ => {
                            bad(sink, "", "`disable` takes either `moveTo` or `attribute` (with `value`)".into(), help)
                        }
                    }
                }
            };
            Connection::Ldap(LdapConnection {
                url: url?,
                start_tls: t.start_tls.unwrap_or(false),
                bind_dn: bind_dn?,
                password: password?,
                users_base: users_base?,
                groups_base: groups_base?,
                flavor,
                user_key: user_key?,
                disable: disable?,
                access_log: access_log?,
            })
        }
    };
    ok.then(|| Target { name: name.clone(), users, ca_file: t.ca_file.clone(), connection })
}

#[cfg(test)]
mod tests;
