//! Encryption: key algorithms and sizes against `EncryptionPolicy.keys`, certificate lifetimes
//! against `certificates.maxLifetime` (configured and live), and target URLs that are not TLS
//! outside loopback. Plain-text secrets are in [`super::secrets`].

use super::default_severity;
use crate::load::PathSeg;
use crate::model::config::Connection;
use crate::model::{CredentialType, Curve, KeyAlgorithm, Kind, Severity};
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

pub(super) fn check(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    keys_and_lifetimes(ctx, out);
    live_certificates(ctx, out);
    urls(ctx, out);
}

fn rsa_bits(a: KeyAlgorithm) -> Option<u32> {
    match a {
        KeyAlgorithm::Rsa3072 => Some(3072),
        KeyAlgorithm::Rsa4096 => Some(4096),
        _ => None,
    }
}

fn curve(a: KeyAlgorithm) -> Option<Curve> {
    match a {
        KeyAlgorithm::EcdsaP256 => Some(Curve::P256),
        KeyAlgorithm::EcdsaP384 => Some(Curve::P384),
        _ => None,
    }
}

fn curve_str(c: Curve) -> &'static str {
    match c {
        Curve::P256 => "p256",
        Curve::P384 => "p384",
        Curve::P521 => "p521",
    }
}

fn algorithm_str(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        KeyAlgorithm::Rsa3072 => "rsa-3072",
        KeyAlgorithm::Rsa4096 => "rsa-4096",
    }
}

fn keys_and_lifetimes(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    for (pname, policy) in &ctx.desired.encryption_policies {
        let keys = policy.keys.as_ref();
        let max_cert = policy.certificates.as_ref().and_then(|c| c.max_lifetime);
        for (name, sa) in &ctx.desired.service_accounts {
            for (i, c) in sa.credentials.iter().enumerate() {
                let path = |field: &str| -> Vec<PathSeg> { vec!["credentials".into(), i.into(), field.into()] };
                if let (Some(k), Some(alg)) = (keys, c.key_algorithm) {
                    let weak = match (rsa_bits(alg), curve(alg)) {
                        (Some(bits), _) => k.min_rsa_bits.filter(|min| bits < *min).map(|min| {
                            format!("{bits}-bit RSA, below keys.minRsaBits ({min}) of EncryptionPolicy `{pname}`")
                        }),
                        (_, Some(cv)) => {
                            k.allowed_curves.as_ref().filter(|allowed| !allowed.contains(&cv)).map(|allowed| {
                                let list: Vec<&str> = allowed.iter().map(|c| curve_str(*c)).collect();
                                format!(
                                    "curve {}, not in keys.allowedCurves ({}) of EncryptionPolicy `{pname}`",
                                    curve_str(cv),
                                    list.join(", ")
                                )
                            })
                        }
                        _ => None,
                    };
                    if let Some(why) = weak {
                        out.push(
                            Finding::new(
                                Rule::EncryptionWeakKey.id(),
                                default_severity(Rule::EncryptionWeakKey),
                                format!("service-account.{name}"),
                                format!(
                                    "credential `{}` of service account `{name}` uses {} ({why})",
                                    c.name,
                                    algorithm_str(alg)
                                ),
                            )
                            .help("choose a keyAlgorithm that the EncryptionPolicy allows; the next rotation uses it")
                            .at(ctx.locate(
                                Kind::ServiceAccount,
                                name,
                                &path("keyAlgorithm"),
                            )),
                        );
                    }
                }
                if let Some(max) = max_cert
                    && c.kind == CredentialType::Certificate
                    && c.lifetime.seconds() > max.seconds()
                {
                    out.push(
                        Finding::new(
                            Rule::EncryptionCertificateLifetime.id(),
                            default_severity(Rule::EncryptionCertificateLifetime),
                            format!("service-account.{name}"),
                            format!(
                                "certificate `{}` of service account `{name}` lives {}, longer than certificates.maxLifetime ({max}) of EncryptionPolicy `{pname}`",
                                c.name, c.lifetime
                            ),
                        )
                        .help(format!("set `lifetime` to {max} or less"))
                        .at(ctx.locate(Kind::ServiceAccount, name, &path("lifetime"))),
                    );
                }
            }
        }
    }
}

/// Live certificates valid for longer than any policy's `certificates.maxLifetime`.
fn live_certificates(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    let max = ctx
        .desired
        .encryption_policies
        .iter()
        .filter_map(|(n, p)| p.certificates.as_ref().and_then(|c| c.max_lifetime).map(|m| (n, m)))
        .min_by_key(|(_, m)| m.seconds());
    let Some((pname, max)) = max else { return };
    for (t, lt) in live {
        for s in &lt.service_accounts {
            for c in s.credentials.iter().filter(|c| c.kind == CredentialType::Certificate) {
                let lifetime = c.end - c.start;
                if lifetime <= max.to_chrono() + chrono::TimeDelta::days(1) {
                    continue;
                }
                let location = ctx
                    .desired
                    .service_accounts
                    .get_key_value(s.name.as_str())
                    .and_then(|(n, _)| ctx.locate(Kind::ServiceAccount, n, &["name".into()]));
                out.push(
                    Finding::new(
                        Rule::EncryptionCertificateLifetime.id(),
                        Severity::Warn,
                        format!("{t}.credential.{}/{}", s.name, c.name),
                        format!(
                            "live certificate `{}` of `{}` on `{t}` is valid for {} days, longer than certificates.maxLifetime ({max}) of EncryptionPolicy `{pname}`",
                            c.name,
                            s.name,
                            lifetime.num_days()
                        ),
                    )
                    .help("replace it with a certificate of a shorter lifetime")
                    .at(location),
                );
            }
        }
    }
}

/// Whether a URL's host is the loopback interface (as validation decides it).
fn is_loopback(url: &str) -> bool {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `encryption.insecure-url`: every URL keyward connects to is TLS, except on loopback.
fn urls(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    for (name, target) in &ctx.desired.settings.targets {
        let mut urls: Vec<(&str, &str, bool)> = Vec::new();
        match &target.connection {
            Connection::File { .. } => {}
            Connection::Scim { url, .. } | Connection::Dataverse { url, .. } | Connection::Fno { url, .. } => {
                urls.push(("url", url, false));
            }
            Connection::Graph { endpoint, authority, .. } => {
                urls.extend(endpoint.as_deref().map(|u| ("endpoint", u, false)));
                urls.extend(authority.as_deref().map(|u| ("authority", u, false)));
            }
            Connection::Ldap(l) => urls.push(("url", &l.url, l.start_tls)),
        }
        if let Connection::Dataverse { authority: Some(a), .. } | Connection::Fno { authority: Some(a), .. } =
            &target.connection
        {
            urls.push(("authority", a, false));
        }
        for (field, url, start_tls) in urls {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
            let secure = match scheme.as_str() {
                "https" | "ldaps" => true,
                "ldap" => start_tls || is_loopback(url),
                "http" => is_loopback(url),
                _ => false,
            };
            if secure {
                continue;
            }
            out.push(
                Finding::new(
                    Rule::EncryptionInsecureUrl.id(),
                    default_severity(Rule::EncryptionInsecureUrl),
                    format!("settings.targets.{name}"),
                    format!("target `{name}` connects to `{url}` without TLS"),
                )
                .help("use https:// (for LDAP: ldaps://, or ldap:// with startTls: true); plain connections are allowed on loopback only")
                .at(ctx.locate_setting(&["targets".into(), name.as_str().into(), field.into()])),
            );
        }
    }
}
