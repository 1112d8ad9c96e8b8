//! Resolving `keyward.yaml` into [`Settings`]: which fields each provider needs, secret
//! references, transport security.

use std::collections::BTreeMap;

use super::{Origins, Sink, parse_as};
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::config::{
    ClientCredential, ConfigFile, Connection, LdapConnection, LdapDisable, LdapFlavor, Settings, Target, TargetFile,
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
    let new_errors = sink.diags[errors_before..].iter().any(Diagnostic::is_error);
    if new_errors {
        return None;
    }
    Some(Settings {
        targets,
        scope: ownership.scope,
        protected: ownership.protected.iter().map(|p| p.to_ascii_lowercase()).collect(),
        removed_users: file.lifecycle.map(|l| l.removed_users).unwrap_or_default(),
        max_deletes: file.guards.as_ref().and_then(|g| g.max_deletes),
        min_admins: file.guards.and_then(|g| g.min_admins),
        audit_path: file.audit.and_then(|a| a.path).unwrap_or_else(|| DEFAULT_AUDIT_PATH.to_string()),
        notify_webhook,
        policy: file.policy.unwrap_or_default(),
    })
}

fn secret(sink: &mut Sink, doc: &crate::load::Document, path: &[PathSeg], value: &str) -> Option<SecretRef> {
    match SecretRef::parse(value) {
        Ok(r) => Some(r),
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
    let set: [(&str, bool); 19] = [
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
        ("federatedDomains", t.federated_domains.is_some()),
    ];
    let entra: &[&str] = &["tenant", "clientId", "clientSecret", "certificate", "federatedTokenFile", "authority"];
    let allowed: Vec<&str> = match p {
        ProviderKind::File => vec!["path"],
        ProviderKind::Scim => vec!["url", "token"],
        ProviderKind::Graph => [entra, &["endpoint", "federatedDomains"]].concat(),
        ProviderKind::Dataverse | ProviderKind::Fno => [entra, &["url"]].concat(),
        ProviderKind::Ldap => {
            vec!["url", "startTls", "bindDn", "password", "usersBase", "groupsBase", "flavor", "userKey", "disable"]
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
        ProviderKind::File => Connection::File { path: require(sink, "path", &t.path)? },
        ProviderKind::Scim => {
            let url = require(sink, "url", &t.url);
            let token = require(sink, "token", &t.token).and_then(|v| secret(sink, doc, &path("token"), &v));
            let url = url.filter(|u| https(sink, "url", u, &["https"]));
            Connection::Scim { url: url?, token: token? }
        }
        ProviderKind::Graph | ProviderKind::Dataverse | ProviderKind::Fno => {
            let tenant = require(sink, "tenant", &t.tenant);
            let client_id = require(sink, "clientId", &t.client_id);
            let creds: Vec<(&str, &Option<String>)> = vec![
                ("clientSecret", &t.client_secret),
                ("certificate", &t.certificate),
                ("federatedTokenFile", &t.federated_token_file),
            ];
            let given: Vec<&str> = creds.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| *n).collect();
            let credential = match given.as_slice() {
                ["clientSecret"] => {
                    secret(sink, doc, &path("clientSecret"), t.client_secret.as_deref()?).map(ClientCredential::Secret)
                }
                ["certificate"] => secret(sink, doc, &path("certificate"), t.certificate.as_deref()?)
                    .map(ClientCredential::Certificate),
                ["federatedTokenFile"] => t.federated_token_file.clone().map(ClientCredential::FederatedTokenFile),
                _ => {
                    sink.at(
                        doc,
                        base,
                        Diagnostic::error(
                            "credential-choice",
                            format!(
                                "target `{name}` needs exactly one of clientSecret, certificate, federatedTokenFile"
                            ),
                        )
                        .field(format!("targets.{name}")),
                    );
                    None
                }
            };
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
                        Connection::Dataverse { url, tenant, client_id, credential, authority }
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
                match crate::provider::ldap::dn::Dn::parse(&v) {
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
            let bind_dn = dn_ok(sink, "bindDn", bind_dn);
            let users_base = dn_ok(sink, "usersBase", users_base);
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
                        (Some(m), None, None) => match crate::provider::ldap::dn::Dn::parse(m) {
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
            })
        }
    };
    ok.then(|| Target { name: name.clone(), users, ca_file: t.ca_file.clone(), connection })
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://localhost:8080/scim"));
        assert!(is_loopback_url("http://127.0.0.1:1/x"));
        assert!(is_loopback_url("http://[::1]:80/"));
        assert!(is_loopback_url("ldap://user@127.0.0.2:389"));
        assert!(!is_loopback_url("http://localhost.evil.example/"));
        assert!(!is_loopback_url("http://10.0.0.1/"));
    }
}
