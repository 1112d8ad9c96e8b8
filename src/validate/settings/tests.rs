use super::is_loopback_url;
use crate::load::Loaded;
use crate::model::SecretRef;
use crate::model::config::{AzureBlobState, BlobAuth, ClientCredential, StateSettings};

/// The resolved `state`, or the codes of the diagnostics.
fn state_of(block: &str) -> Result<StateSettings, Vec<&'static str>> {
    let mut loaded = Loaded::default();
    let settings = format!("version: 1\ntargets: {{dir: {{provider: file, path: d.json}}}}\n{block}");
    loaded.add_file("keyward.yaml".into(), settings.into_bytes());
    let v = crate::validate::validate(&loaded.finish().expect("has settings"));
    match v.state {
        Some(s) => Ok(s.settings.state),
        None => Err(v.diagnostics.iter().map(|d| d.code).collect()),
    }
}

#[test]
fn state_settings_resolve() {
    assert_eq!(state_of(""), Ok(StateSettings::Local));
    assert_eq!(state_of("state: {backend: local}\n"), Ok(StateSettings::Local));
    let key = "state:\n  backend: azureblob\n  url: https://contoso.blob.core.windows.net/kw-state\n  \
                   prefix: prod/identity\n  accountKey: ${env:KEY}\n";
    assert_eq!(
        state_of(key),
        Ok(StateSettings::AzureBlob(AzureBlobState {
            url: "https://contoso.blob.core.windows.net/kw-state".into(),
            prefix: "prod/identity/".into(),
            auth: BlobAuth::AccountKey(SecretRef::Env("KEY".into())),
            ca_file: None,
        }))
    );
    let oidc = "state:\n  backend: azureblob\n  url: http://127.0.0.1:10000/devacct/state\n  tenant: t\n  \
                    clientId: c\n  federatedTokenFile: /var/run/secrets/token\n";
    match state_of(oidc) {
        Ok(StateSettings::AzureBlob(s)) => {
            assert_eq!(s.prefix, "");
            assert_eq!(
                s.auth,
                BlobAuth::Entra {
                    tenant: "t".into(),
                    client_id: "c".into(),
                    credential: ClientCredential::FederatedTokenFile("/var/run/secrets/token".into()),
                    authority: None,
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let sas =
        "state: {backend: azureblob, url: 'https://contoso.blob.core.windows.net/kw-state', sasToken: '${file:sas}'}\n";
    assert!(matches!(state_of(sas), Ok(StateSettings::AzureBlob(AzureBlobState { auth: BlobAuth::SasToken(_), .. }))));
}

#[test]
fn state_settings_are_checked() {
    let url = "https://contoso.blob.core.windows.net/kw-state";
    for (block, codes) in [
        ("state: {url: 'https://a.blob.core.windows.net/c'}\n", vec!["field-not-for-backend"]),
        ("state: {backend: azureblob, accountKey: '${env:K}'}\n", vec!["missing-field"]),
        (&format!("state: {{backend: azureblob, url: '{url}'}}\n"), vec!["credential-choice"]),
        (
            &format!("state: {{backend: azureblob, url: '{url}', tenant: t, clientSecret: '${{env:S}}'}}\n"),
            vec!["missing-field"],
        ),
        (&format!("state: {{backend: azureblob, url: '{url}', tenant: t, clientId: c}}\n"), vec!["credential-choice"]),
        (
            &format!("state: {{backend: azureblob, url: '{url}?sv=1&sig=x', accountKey: '${{env:K}}'}}\n"),
            vec!["invalid-url"],
        ),
        (&format!("state: {{backend: azureblob, url: '{url}', sasToken: 'sv=1&sig=x'}}\n"), vec!["literal-secret"]),
        ("state: {backend: s3}\n", vec!["unknown-value"]),
    ] {
        let got = state_of(block).expect_err(block);
        assert_eq!(got, codes, "{block}");
    }
}

#[test]
fn loopback_urls() {
    assert!(is_loopback_url("http://localhost:8080/scim"));
    assert!(is_loopback_url("http://127.0.0.1:1/x"));
    assert!(is_loopback_url("http://[::1]:80/"));
    assert!(is_loopback_url("ldap://user@127.0.0.2:389"));
    assert!(!is_loopback_url("http://localhost.evil.example/"));
    assert!(!is_loopback_url("http://10.0.0.1/"));
}
