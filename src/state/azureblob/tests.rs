use super::*;

#[test]
fn container_urls() {
    let u = ContainerUrl::parse("https://acct1.blob.core.windows.net/keyward-state").unwrap();
    assert_eq!((u.account.as_str(), u.container.as_str()), ("acct1", "keyward-state"));
    assert_eq!(u.base.as_str(), "https://acct1.blob.core.windows.net/keyward-state");
    let u = ContainerUrl::parse("http://127.0.0.1:10000/devacct/state/").unwrap();
    assert_eq!((u.account.as_str(), u.container.as_str()), ("devacct", "state"));
    assert_eq!(u.base.as_str(), "http://127.0.0.1:10000/devacct/state");
    assert!(ContainerUrl::parse("http://localhost:1/devacct/state").is_ok());
    for (bad, says) in [
        ("http://acct.blob.core.windows.net/c0ntainer", "http"),
        ("https://acct.blob.core.windows.net/c?sv=1&sig=abc", "sasToken"),
        ("https://acct.blob.core.windows.net/", "container URL"),
        ("https://acct.blob.core.windows.net/a/b", "container URL"),
        ("http://127.0.0.1:10000/onlyone", "emulator"),
        ("https://acct.blob.core.windows.net/Upper", "container name"),
        ("https://acct.blob.core.windows.net/a--b", "container name"),
        ("https://ACCT-x.blob.core.windows.net/abc", "account name"),
    ] {
        let e = ContainerUrl::parse(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(!e.contains("sig=abc"), "{e}");
    }
}

#[test]
fn prefixes() {
    assert_eq!(normalize_prefix("").unwrap(), "");
    assert_eq!(normalize_prefix("prod/identity").unwrap(), "prod/identity/");
    assert_eq!(normalize_prefix("prod/").unwrap(), "prod/");
    for bad in ["/abs", "a//b", "a/../b", "a b", "a?b", "é"] {
        assert_eq!(normalize_prefix(bad), Err(LocationError::Prefix(bad.to_string())), "{bad}");
    }
}

#[test]
fn location_errors_say_what_went_wrong_and_what_to_write() {
    let e = ContainerUrl::parse("http://acct.blob.core.windows.net/state").unwrap_err();
    assert!(matches!(e, LocationError::Insecure(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`http://acct.blob.core.windows.net/state` is plain http to a host other than loopback; \
         endpoints other than loopback must use https"
    );
    let e = ContainerUrl::parse("https://acct.blob.core.windows.net/c?sv=1&sig=abc").unwrap_err();
    assert_eq!(e, LocationError::Query { url: "https://acct.blob.core.windows.net/c".into() });
    assert_eq!(
        e.to_string(),
        "`https://acct.blob.core.windows.net/c` has a query; write the container's URL alone, \
         and a SAS token in `sasToken` as a secret reference"
    );
    let e = ContainerUrl::parse("https://u:p@acct.blob.core.windows.net/c0").unwrap_err();
    assert_eq!(e.to_string(), "the URL holds a user name or password; remove it");
    let e = ContainerUrl::parse("not a url").unwrap_err();
    assert!(matches!(&e, LocationError::NotUrl { input, .. } if input == "not a url"), "{e:?}");
    assert!(e.to_string().starts_with("`not a url` is not a URL: "), "{e}");
    assert_eq!(
        ContainerUrl::parse("https://ab.blob.core.windows.net/c0").unwrap_err().to_string(),
        "`ab` is not a storage account name (3 to 24 lower-case letters and digits)"
    );
    assert_eq!(
        normalize_prefix("a//b").unwrap_err().to_string(),
        "`a//b` is not a prefix: write folder names of letters, digits, `.`, `_` and `-` separated by `/`, \
         for example prod/identity"
    );
}

#[test]
fn signatures_are_masked_wherever_they_appear() {
    let s =
        "error sending request for url (http://127.0.0.1:1/a/c/lock?comp=lease&sv=2019&SIG=abc%2Bdef&se=x): refused";
    let m = mask_signatures(s);
    assert!(!m.contains("abc%2Bdef"), "{m}");
    assert!(m.contains("SIG=(sensitive)&se=x"), "{m}");
}

#[test]
fn holders_survive_metadata() {
    let holder = LockHolder {
        id: LockId("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
        actor: "Zoë O'Brien".into(),
        host: "runner 7".into(),
        run_id: "123.1".into(),
        commit: Some("abc123".into()),
        since: chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().to_utc(),
        pid: Some(42),
    };
    let mut h = HeaderMap::new();
    for (k, v) in holder_metadata(&holder) {
        h.insert(
            HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    assert_eq!(holder_from_metadata(&h), Some(holder));
}

/// Entra ID: the storage scope's token as a bearer header with a version that accepts it
/// (2017-11-09 or later); after a 401 the token is fetched again and the request resent
/// once. The client secret shows nowhere.
#[tokio::test]
async fn entra_tokens_go_as_bearer_with_a_recent_api_version() {
    use axum::http::{HeaderMap as Headers, StatusCode};
    use keyward_fakes::entra::Entra;
    use std::sync::{Arc, Mutex};
    const CLIENT: &str = "44444444-4444-4444-4444-444444444444";
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("canary-{}", crate::remote::entra::random_guid().unwrap());
    std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
    let entra = Entra::new();
    entra.register(CLIENT, Some(&secret));
    let idp = keyward_fakes::serve(entra.router());
    let seen: Arc<Mutex<Vec<Headers>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: Headers| {
        let log = log.clone();
        async move {
            let mut v = log.lock().unwrap();
            v.push(headers);
            if v.len() == 1 {
                (StatusCode::UNAUTHORIZED, [("x-ms-error-code", "InvalidAuthenticationInfo")])
            } else {
                (StatusCode::NOT_FOUND, [("x-ms-error-code", "BlobNotFound")])
            }
        }
    });
    let blob = keyward_fakes::serve(app);
    let settings = AzureBlobState {
        url: format!("{}/devacct/state", blob.url()),
        prefix: "p".into(),
        auth: BlobAuth::Entra {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: CLIENT.into(),
            credential: crate::model::config::ClientCredential::Secret(crate::model::SecretRef::File(
                "client-secret".into(),
            )),
            authority: Some(idp.url()),
        },
        ca_file: None,
    };
    let store = AzureBlobStore::new(&settings, dir.path(), Options::default()).unwrap();
    assert_eq!(store.doc_get(DocName::Applied).await.unwrap(), None);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "sent once, then once more after the 401");
    assert_eq!(entra.grants().len(), 2, "a new token after the 401");
    for h in seen.iter() {
        assert!(entra.check(h, "https://storage.azure.com").is_ok(), "{h:?}");
        let version = h["x-ms-version"].to_str().unwrap();
        assert!(version >= "2017-11-09", "{version}");
        assert!(h.contains_key("x-ms-date"));
    }
    assert!(!format!("{store:?}").contains(&secret));
}

/// Canaries: an account key, a SAS signature and a client secret made now, through the
/// errors of a service that cannot be reached (whose messages quote the URL) and of a token
/// endpoint that refuses; none may show in Display or Debug of the store or of an error.
#[tokio::test]
async fn secrets_never_show_in_debug_display_or_errors() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let canary = crate::remote::entra::random_guid().unwrap().replace('-', "");
    let key = base64::engine::general_purpose::STANDARD.encode(format!("key-{canary}"));
    let sig = format!("sig{canary}");
    let client_secret = format!("secret-{canary}");
    std::fs::write(dir.path().join("key"), &key).unwrap();
    std::fs::write(dir.path().join("sas"), format!("?sv=2019-12-12&sp=racwdl&sig={sig}")).unwrap();
    std::fs::write(dir.path().join("client-secret"), &client_secret).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}/devacct/state");
    let file = |f: &str| crate::model::SecretRef::File(f.into());
    let auths = [
        BlobAuth::AccountKey(file("key")),
        BlobAuth::SasToken(file("sas")),
        BlobAuth::Entra {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "c".into(),
            credential: crate::model::config::ClientCredential::Secret(file("client-secret")),
            authority: Some(format!("http://{closed}")),
        },
    ];
    let options = Options { retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() }, ..Options::default() };
    for auth in auths {
        let settings = AzureBlobState { url: url.clone(), prefix: "p".into(), auth, ca_file: None };
        let store = AzureBlobStore::new(&settings, dir.path(), options.clone()).unwrap();
        let errors = [
            store.log_append(0, b"{}\n").await.unwrap_err(),
            store.doc_get(DocName::Applied).await.unwrap_err(),
            store.lock_status().await.unwrap_err(),
        ];
        let mut shown = format!("{store:?}");
        for e in &errors {
            shown.push_str(&format!("\n{e}\n{e:?}"));
        }
        assert!(shown.contains(&closed.to_string()), "the errors name the endpoint: {shown}");
        for secret in [&key, &sig, &client_secret, &canary] {
            assert!(!shown.contains(secret.as_str()), "{secret} shows:\n{shown}");
        }
    }
}

#[test]
fn error_bodies_give_their_code_and_first_message_line() {
    let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to \
                    authenticate the request.\nRequestId:1\nTime:2</Message><AuthenticationErrorDetail>The MAC \
                    signature found in the HTTP request 'x' is not the same</AuthenticationErrorDetail></Error>";
    assert_eq!(xml_element(body, "Code").as_deref(), Some("AuthenticationFailed"));
    assert!(xml_element(body, "Message").unwrap().starts_with("Server failed to authenticate the request.\n"));
    assert_eq!(xml_element("<a>&lt;b&gt; &amp;</a>", "a").as_deref(), Some("<b> &"));
}
