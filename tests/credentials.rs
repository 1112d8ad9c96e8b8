//! Service-account credentials end to end: rotation walked through with an injected clock on
//! the file provider, certificates and proof tokens checked with x509-parser and ring, the
//! file and Key Vault sinks, delivery failure and recovery, and canaries: delivered material
//! appears in its sink only.

mod support;

use serde_json::Value;
use support::{Sandbox, changes};

/// The quick start's payments-bot: bank-api-cert, ecdsa-p256, lifetime 90d, rotateBefore 14d,
/// overlap 7d, delivered to `.keyward/secrets/payments-bot.pem`. Plus a secret delivered to a
/// file, added here.
fn sandbox() -> Sandbox {
    let s = Sandbox::example("quickstart");
    s.edit(
        "service-accounts/payments-bot.yaml",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}\n  - name: webhook-secret\n    type: secret\n    lifetime: 30d\n    rotateBefore: 5d\n    overlap: 2d\n    deliver: {file: .keyward/secrets/webhook.txt}",
    );
    s
}

fn at(s: &mut Sandbox, now: &str) {
    s.now = now.to_string();
}

/// The credentials of payments-bot in the directory: (name, start, end).
fn creds(s: &Sandbox) -> Vec<(String, String, String)> {
    let dir = s.directory();
    let sa = dir["serviceAccounts"].as_array().unwrap().iter().find(|a| a["name"] == "payments-bot").unwrap();
    let mut v: Vec<_> = sa["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["start"].as_str().unwrap().to_string(),
                c["end"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn names(s: &Sandbox) -> Vec<String> {
    creds(s).into_iter().map(|c| c.0).collect()
}

/// The credential changes of a plan: (address, action).
fn cred_changes(plan: &Value) -> Vec<(String, String)> {
    changes(plan).into_iter().filter(|(a, _)| a.contains(".credential.")).collect()
}

fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("{address} in {plan:#}"))
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn rotation_walks_through_window_overlap_and_removal() {
    let mut s = sandbox();
    // Day 0: the account is new; both credentials are issued (reason: new).
    let plan = s.plan_json();
    let cert = change(&plan, "directory.credential.payments-bot/bank-api-cert");
    assert_eq!(cert["action"], "rotate");
    assert!(cert["reason"]["message"].as_str().unwrap().starts_with("new:"), "{cert:#}");
    assert_eq!(cert["after"]["credential"], "bank-api-cert@2026-11-28");
    assert_eq!(cert["after"]["end"], "2027-02-26");
    assert_eq!(cert["after"]["keyAlgorithm"], "ecdsa-p256");
    assert_eq!(cert["after"]["deliver"], "file .keyward/secrets/payments-bot.pem");
    s.apply_ok();
    assert_eq!(names(&s), ["bank-api-cert@2026-11-28", "webhook-secret@2026-11-28"]);
    assert_eq!(creds(&s)[0].2, "2027-02-26T12:00:00Z");
    #[cfg(unix)]
    {
        assert_eq!(mode(&s.path(".keyward/secrets/payments-bot.pem")), 0o600);
        assert_eq!(mode(&s.path(".keyward/secrets/webhook.txt")), 0o600);
    }
    let pem = s.read(".keyward/secrets/payments-bot.pem");
    assert!(pem.contains("-----BEGIN CERTIFICATE-----") && pem.contains("-----BEGIN PRIVATE KEY-----"));
    assert!(s.read(".keyward/secrets/webhook.txt").len() >= 32);
    // Recorded as undelivered while being delivered, then forgotten once delivered.
    let state: Value = serde_json::from_str(&s.read(".keyward/undelivered.json")).unwrap();
    assert_eq!(state["undelivered"], serde_json::json!([]));
    assert!(cred_changes(&s.plan_json()).is_empty(), "converged");

    // One second before the certificate's window (end - 14d): nothing to do.
    at(&mut s, "2027-02-12T11:59:59Z");
    assert!(cred_changes(&s.plan_json()).iter().all(|(a, _)| !a.contains("bank-api-cert")));
    // Entering the window: rotate, with the reason and dates.
    at(&mut s, "2027-02-12T12:00:00Z");
    let plan = s.plan_json();
    let cert = change(&plan, "directory.credential.payments-bot/bank-api-cert");
    assert_eq!(cert["action"], "rotate");
    assert_eq!(cert["reason"]["kind"], "policy");
    assert_eq!(
        cert["reason"]["message"],
        "inside window: `bank-api-cert@2026-11-28` ends on 2027-02-26, within rotateBefore 14d (from 2027-02-12)"
    );
    assert_eq!(cert["before"]["credential"], "bank-api-cert@2026-11-28");
    assert_eq!(cert["after"]["credential"], "bank-api-cert@2027-02-12");
    let old_pem = s.read(".keyward/secrets/payments-bot.pem");
    let old_secret = s.read(".keyward/secrets/webhook.txt");
    s.run(&["apply", "{dir}", "--auto-approve", "--target", "directory"]).expect(0);
    // The secret (30d) had expired by now: replaced too, with a new value.
    assert_ne!(s.read(".keyward/secrets/webhook.txt"), old_secret);
    assert!(names(&s).contains(&"webhook-secret@2027-02-12".to_string()));
    // Old and new coexist; the sink holds the new one.
    let now_names = names(&s);
    assert!(now_names.contains(&"bank-api-cert@2026-11-28".to_string()), "{now_names:?}");
    assert!(now_names.contains(&"bank-api-cert@2027-02-12".to_string()), "{now_names:?}");
    assert_ne!(s.read(".keyward/secrets/payments-bot.pem"), old_pem);

    // Through the overlap (7d from the new one's start) both stay.
    at(&mut s, "2027-02-19T11:59:59Z");
    assert!(
        cred_changes(&s.plan_json()).iter().all(|(a, _)| !a.contains("bank-api-cert")),
        "no removal during the overlap"
    );
    // After the overlap: the old one is revoked, the new one stays.
    at(&mut s, "2027-02-19T12:00:00Z");
    let plan = s.plan_json();
    let old = change(&plan, "directory.credential.payments-bot/bank-api-cert@2026-11-28");
    assert_eq!(old["action"], "revoke");
    assert!(old["reason"]["message"].as_str().unwrap().contains("overlap of 7d ended on 2027-02-19"), "{old:#}");
    assert_eq!(old["before"]["end"], "2027-02-26");
    s.apply_ok();
    assert!(names(&s).contains(&"bank-api-cert@2027-02-12".to_string()));
    assert!(!names(&s).contains(&"bank-api-cert@2026-11-28".to_string()));
}

#[test]
fn an_expired_credential_is_replaced_and_removed_in_a_later_run() {
    let mut s = sandbox();
    s.apply_ok();
    at(&mut s, "2027-03-01T00:00:00Z");
    let plan = s.plan_json();
    let cert = change(&plan, "directory.credential.payments-bot/bank-api-cert");
    assert_eq!(cert["reason"]["kind"], "expiry");
    assert_eq!(cert["reason"]["message"], "expired: `bank-api-cert@2026-11-28` ended on 2027-02-26");
    // The replacement is issued first; the expired one goes in the next run, not this one.
    assert!(!cred_changes(&plan).iter().any(|(a, act)| a.ends_with("bank-api-cert@2026-11-28") && act == "revoke"));
    s.apply_ok();
    let plan = s.plan_json();
    let old = change(&plan, "directory.credential.payments-bot/bank-api-cert@2026-11-28");
    assert_eq!(old["action"], "revoke");
    assert_eq!(old["reason"]["message"], "`bank-api-cert@2026-11-28` expired on 2027-02-26");
}

#[test]
fn unknown_credentials_are_drift_and_count_against_max_deletes() {
    let s = sandbox();
    s.apply_ok();
    let mut dir = s.directory();
    let sa = dir["serviceAccounts"].as_array_mut().unwrap().iter_mut().find(|a| a["name"] == "payments-bot").unwrap();
    let creds = sa["credentials"].as_array_mut().unwrap();
    for (i, name) in ["made-by-hand", "bank-api-cert"].iter().enumerate() {
        creds.push(serde_json::json!({"id": format!("c-x{i}"), "name": name, "type": "secret",
            "start": "2026-11-01T00:00:00Z", "end": "2027-11-01T00:00:00Z"}));
    }
    s.set_directory(&dir);
    let plan = s.plan_json();
    let stray = change(&plan, "directory.credential.payments-bot/made-by-hand");
    assert_eq!(stray["action"], "delete");
    assert_eq!(stray["reason"]["kind"], "drift");
    // A same-named secret where a certificate is declared is no current credential of it:
    // the keyward certificate stays current; the other is an older instance, kept until it
    // is superseded for `overlap`.
    let drift = s.run(&["drift", "{dir}"]);
    drift.expect(2);
    assert!(drift.stdout.contains("made-by-hand"), "{}", drift.stdout);
    // The guard counts credential deletions.
    s.edit("keyward.yaml", "maxDeletes: 5", "maxDeletes: 0");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(
        r.stderr.contains("guards.maxDeletes: the plan disables or deletes 1 accounts or credentials"),
        "{}",
        r.stderr
    );
    // Raised for this run, it applies; the stray credential is gone, keyward's stay.
    s.run(&["apply", "{dir}", "--auto-approve", "--max-deletes", "1"]).expect(0);
    assert!(!names(&s).contains(&"made-by-hand".to_string()));
    assert!(names(&s).contains(&"bank-api-cert@2026-11-28".to_string()));
}

#[test]
fn a_failed_delivery_is_recorded_and_the_next_run_replaces_it() {
    let s = sandbox();
    // The sink's folder cannot be made: a file stands where it should be.
    s.write(".keyward/secrets", "not a folder");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stdout.contains("but delivery failed"), "{}", r.stdout);
    assert!(r.stdout.contains("the next plan replaces it"), "{}", r.stdout);
    for out in [&r.stdout, &r.stderr] {
        assert!(!out.contains("PRIVATE KEY") && !out.contains("MII") && !out.contains("MIG"), "{out}");
    }
    // Issued on the target, recorded as not delivered.
    assert_eq!(names(&s), ["bank-api-cert@2026-11-28", "webhook-secret@2026-11-28"]);
    let state: Value = serde_json::from_str(&s.read(".keyward/undelivered.json")).unwrap();
    assert_eq!(state["undelivered"].as_array().unwrap().len(), 2);
    let review = s.run(&["audit", "review", "{dir}", "--format", "json"]);
    review.expect(0);
    let mut undelivered: Vec<String> = review.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "undelivered")
        .map(|i| i["subject"].as_str().unwrap().to_string())
        .collect();
    undelivered.sort();
    assert_eq!(undelivered, ["payments-bot/bank-api-cert@2026-11-28", "payments-bot/webhook-secret@2026-11-28"]);
    let audit = s.read(".keyward/audit.jsonl");
    assert!(audit.contains("issued `bank-api-cert@2026-11-28`"), "{audit}");

    // The next plan replaces each and removes the undelivered one.
    std::fs::remove_file(s.path(".keyward/secrets")).unwrap();
    let plan = s.plan_json();
    let cert = change(&plan, "directory.credential.payments-bot/bank-api-cert");
    assert_eq!(cert["action"], "rotate");
    assert!(cert["reason"]["message"].as_str().unwrap().starts_with("not delivered:"), "{cert:#}");
    let stale = change(&plan, "directory.credential.payments-bot/bank-api-cert@2026-11-28");
    assert_eq!(stale["action"], "revoke");
    assert!(stale["reason"]["message"].as_str().unwrap().contains("never delivered"));
    s.apply_ok();
    let state: Value = serde_json::from_str(&s.read(".keyward/undelivered.json")).unwrap();
    assert!(state["undelivered"].as_array().unwrap().is_empty(), "{state:#}");
    assert_eq!(creds(&s).len(), 2);
    assert!(s.read(".keyward/secrets/payments-bot.pem").contains("PRIVATE KEY"));
    assert!(cred_changes(&s.plan_json()).is_empty());
}

#[test]
fn delivered_material_appears_in_its_sink_only() {
    let mut s = sandbox();
    let trace = [("KEYWARD_LOG", "trace")];
    let mut outputs = Vec::new();
    let mut run = |s: &Sandbox, args: &[&str]| {
        let r = s.run_with_env(args, &trace);
        outputs.push(r.stdout.clone());
        outputs.push(r.stderr.clone());
        r
    };
    run(&s, &["plan", "{dir}", "--format", "json"]).expect(0);
    run(&s, &["apply", "{dir}", "--auto-approve"]).expect(0);
    at(&mut s, "2027-02-20T12:00:00Z");
    run(&s, &["plan", "{dir}", "--out", "{dir}/plan.json"]).expect(0);
    let saved = s.path("plan.json").to_string_lossy().into_owned();
    let r = run(&s, &["apply", &saved, "--config", "{dir}"]);
    r.expect(0);
    run(&s, &["drift", "{dir}", "--format", "markdown"]);
    run(&s, &["audit", "review", "{dir}"]).expect(0);
    run(&s, &["audit", "show", "{dir}"]).expect(0);

    let pem = s.read(".keyward/secrets/payments-bot.pem");
    let key_lines: Vec<&str> = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.len() > 20 && !l.starts_with("-----"))
        .collect();
    assert!(!key_lines.is_empty());
    let secret = s.read(".keyward/secrets/webhook.txt");
    assert!(secret.len() >= 32);
    let mut haystacks = outputs;
    for f in [".keyward/audit.jsonl", ".keyward/directory.json", "plan.json"] {
        haystacks.push(s.read(f));
    }
    if s.path(".keyward/undelivered.json").exists() {
        haystacks.push(s.read(".keyward/undelivered.json"));
    }
    for h in &haystacks {
        assert!(!h.contains(secret.trim()), "the secret leaked into:\n{h}");
        for l in &key_lines {
            assert!(!h.contains(l), "private key material leaked into:\n{h}");
        }
    }
}

#[test]
fn delivered_certificate_matches_the_plan() {
    use x509_parser::prelude::*;
    let s = sandbox();
    s.apply_ok();
    let pem = s.read(".keyward/secrets/payments-bot.pem");
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&p.contents).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(support::NOW).unwrap().timestamp();
    assert_eq!(cert.validity().not_before.timestamp(), start);
    assert_eq!(cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(), 90 * 86_400);
    assert_eq!(cert.public_key().algorithm.algorithm, x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY);
    // The directory records the certificate's thumbprint (SHA-1, as Entra ID shows it).
    let dir = s.directory();
    let sa = dir["serviceAccounts"].as_array().unwrap().iter().find(|a| a["name"] == "payments-bot").unwrap();
    let c = sa["credentials"].as_array().unwrap().iter().find(|c| c["type"] == "certificate").unwrap();
    assert_eq!(c["thumbprint"].as_str().unwrap(), keyward::credential::generate::thumbprint(&p.contents));
}

mod material {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use keyward::credential::generate;
    use keyward::credential::proof::{self, SigningCertificate};
    use keyward::model::{KeyAlgorithm, Timestamp};
    use x509_parser::prelude::*;

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// Generates a certificate of `alg`, checks algorithm, key size and validity with
    /// x509-parser, then signs a proof token with it and verifies the signature with the
    /// certificate's public key.
    fn check(alg: KeyAlgorithm, curve_or_bits: (&str, usize), jwt_alg: &str) {
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2027-02-26T12:00:00Z"));
        let cert = generate::certificate(alg, "payments-bot bank-api-cert", start, end).unwrap();
        let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
        assert_eq!(x.validity().not_before.timestamp(), start.timestamp());
        assert_eq!(x.validity().not_after.timestamp(), end.timestamp());
        assert_eq!(x.subject().to_string(), "CN=payments-bot bank-api-cert");
        match x.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::EC(p) => {
                assert_eq!(curve_or_bits.0, "ec");
                assert_eq!(p.key_size(), curve_or_bits.1);
            }
            x509_parser::public_key::PublicKey::RSA(r) => {
                assert_eq!(curve_or_bits.0, "rsa");
                assert_eq!(r.key_size(), curve_or_bits.1);
            }
            other => panic!("unexpected key {other:?}"),
        }
        assert_eq!(cert.thumbprint, generate::thumbprint(&cert.der));

        // The proof token, signed with the PEM keyward delivers.
        let signer = SigningCertificate::from_pem(cert.pem.expose()).unwrap();
        assert_eq!(signer.thumbprint(), cert.thumbprint);
        let nbf = t("2027-02-12T12:00:00Z");
        let token = proof::proof_token(&signer, "app-object-id-1", nbf).unwrap();
        let parts: Vec<&str> = token.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |p: &str| serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        let (header, claims) = (json(parts[0]), json(parts[1]));
        assert_eq!(header["alg"], jwt_alg);
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert.der);
        assert_eq!(header["x5t"], URL_SAFE_NO_PAD.encode(sha1.as_ref()));
        assert_eq!(claims["aud"], "00000002-0000-0000-c000-000000000000");
        assert_eq!(claims["iss"], "app-object-id-1");
        assert_eq!(claims["nbf"], nbf.timestamp());
        assert_eq!(claims["exp"], nbf.timestamp() + 600);
        let verify_alg: &dyn ring::signature::VerificationAlgorithm = match jwt_alg {
            "ES256" => &ring::signature::ECDSA_P256_SHA256_FIXED,
            "ES384" => &ring::signature::ECDSA_P384_SHA384_FIXED,
            _ => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        let spki = x.public_key().subject_public_key.data.to_vec();
        let key = ring::signature::UnparsedPublicKey::new(verify_alg, &spki);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        key.verify(signed.as_bytes(), &sig).expect("the proof verifies with the certificate's key");
        let mut tampered = signed.into_bytes();
        tampered[0] ^= 1;
        assert!(key.verify(&tampered, &sig).is_err());
    }

    #[test]
    fn ecdsa_p256() {
        check(KeyAlgorithm::EcdsaP256, ("ec", 256), "ES256");
    }

    #[test]
    fn ecdsa_p384() {
        check(KeyAlgorithm::EcdsaP384, ("ec", 384), "ES384");
    }

    #[test]
    fn rsa_3072() {
        check(KeyAlgorithm::Rsa3072, ("rsa", 3072), "RS256");
    }

    #[test]
    fn rsa_4096() {
        check(KeyAlgorithm::Rsa4096, ("rsa", 4096), "RS256");
    }

    #[test]
    fn pem_without_a_key_is_refused_without_quoting_it() {
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        let cert = generate::certificate(KeyAlgorithm::EcdsaP256, "x", start, end).unwrap();
        let only_cert: String = cert.pem.expose().split("-----BEGIN PRIVATE KEY-----").next().unwrap().to_string();
        let e = SigningCertificate::from_pem(&only_cert).unwrap_err().to_string();
        assert!(!e.contains("MII"), "{e}");
        assert!(e.contains("PRIVATE KEY"), "{e}");
    }
}

mod key_vault {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use keyward::credential::keyvault::{BearerSource, KeyVault, SCOPE};
    use keyward::credential::sink::Sinks;
    use keyward::credential::{Material, generate};
    use keyward::model::{Deliver, KeyVaultSink, Secret, Timestamp};
    use keyward::remote::http::RetryPolicy;
    use keyward_fakes::entra::Entra;

    /// Client-credentials tokens from the fake Entra endpoint, cached until invalidated.
    struct FakeTokens {
        url: String,
        cached: Mutex<Option<String>>,
        fetched: Mutex<usize>,
    }

    #[async_trait]
    impl BearerSource for FakeTokens {
        async fn bearer(&self) -> Result<Secret<String>, String> {
            if let Some(t) = self.cached.lock().unwrap().clone() {
                return Ok(Secret::new(t));
            }
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", "kv-client"),
                ("client_secret", "test-only-client-secret"),
                ("scope", SCOPE),
            ];
            let resp = reqwest::Client::new()
                .post(format!("{}/tenant-1/oauth2/v2.0/token", self.url))
                .form(&form)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
            let t = v["access_token"].as_str().ok_or("no token")?.to_string();
            *self.cached.lock().unwrap() = Some(t.clone());
            *self.fetched.lock().unwrap() += 1;
            Ok(Secret::new(t))
        }
        fn invalidate(&self) {
            *self.cached.lock().unwrap() = None;
        }
    }

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    struct World {
        _server: keyward_fakes::Running,
        vault: keyward_fakes::keyvault::KeyVault,
        tokens: Arc<FakeTokens>,
        sinks: Sinks,
        url: String,
    }

    fn world() -> World {
        let entra = Entra::new();
        entra.register("kv-client", Some("test-only-client-secret"));
        let vault = keyward_fakes::keyvault::KeyVault::new(&entra);
        let server = keyward_fakes::serve(entra.router().merge(vault.router()));
        let url = server.url();
        let tokens = Arc::new(FakeTokens { url: url.clone(), cached: Mutex::new(None), fetched: Mutex::new(0) });
        let retry = RetryPolicy { max_retries: 1, base: std::time::Duration::from_millis(1), ..RetryPolicy::default() };
        let kv = KeyVault::new(reqwest::Client::new(), tokens.clone()).with_retry(retry);
        let sinks = Sinks::new(std::path::Path::new(".")).with_key_vault(kv);
        World { _server: server, vault, tokens, sinks, url }
    }

    fn deliver(w: &World, secret: &str) -> Deliver {
        Deliver::KeyVault(KeyVaultSink { vault: w.url.clone(), secret: secret.into() })
    }

    #[tokio::test]
    async fn delivers_a_new_version_with_its_dates_and_reads_it_back() {
        let w = world();
        let d = deliver(&w, "payments-bot-webhook");
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        let first = generate::secret().unwrap();
        w.sinks.deliver(&d, &Material::Secret(first.clone()), start, end).await.unwrap();
        let second = generate::secret().unwrap();
        w.sinks.deliver(&d, &Material::Secret(second.clone()), start, end).await.unwrap();
        let stored = w.vault.current("payments-bot-webhook").unwrap();
        assert_eq!(&stored.value, second.expose());
        assert_eq!(stored.exp, Some(end.timestamp()));
        assert_eq!(stored.nbf, Some(start.timestamp()));
        assert_eq!(stored.content_type.as_deref(), Some("text/plain"));
        assert_eq!(w.vault.versions("payments-bot-webhook").len(), 2);
        let back = w.sinks.current(&d).await.unwrap().unwrap();
        assert_eq!(back.expose(), second.expose());
        assert!(w.sinks.current(&deliver(&w, "nothing-here")).await.unwrap().is_none());
        assert_eq!(*w.tokens.fetched.lock().unwrap(), 1, "the token is reused");
    }

    #[tokio::test]
    async fn a_stale_token_is_refreshed_once() {
        let w = world();
        *w.tokens.cached.lock().unwrap() = Some("revoked-token".into());
        let d = deliver(&w, "s");
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        w.sinks.deliver(&d, &Material::Secret(generate::secret().unwrap()), start, end).await.unwrap();
        assert_eq!(*w.tokens.fetched.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_refused_write_fails_without_echoing_the_secret() {
        let w = world();
        w.vault.fail_next_puts(403, 1);
        let d = deliver(&w, "s");
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        let secret = generate::secret().unwrap();
        let e = w.sinks.deliver(&d, &Material::Secret(secret.clone()), start, end).await.unwrap_err().to_string();
        assert!(e.contains("403") && e.contains("Forbidden"), "{e}");
        assert!(!e.contains(secret.expose().as_str()), "{e}");
        assert!(w.vault.current("s").is_none());
        // Invalid names never reach the vault.
        let e = w.sinks.deliver(&deliver(&w, "bad_name"), &Material::Secret(secret.clone()), start, end).await;
        assert!(e.unwrap_err().to_string().contains("not a Key Vault secret name"));
    }

    #[tokio::test]
    async fn the_configurations_entra_identity_reaches_the_vault() {
        let secret = format!("test-only-{}", generate::secret().unwrap().expose());
        let client = "11111111-1111-1111-1111-111111111111";
        let entra = Entra::new();
        entra.register(client, Some(&secret));
        let vault = keyward_fakes::keyvault::KeyVault::new(&entra);
        let server = keyward_fakes::serve(entra.router().merge(vault.router()));
        let url = server.url();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("client-secret", &secret);
        write(
            "keyward.yaml",
            &format!(
                "version: 1\ntargets:\n  entra:\n    provider: graph\n    tenant: contoso.onmicrosoft.com\n    clientId: {client}\n    clientSecret: ${{file:client-secret}}\n    authority: {url}\n  directory:\n    provider: file\n    path: .keyward/directory.json\n"
            ),
        );
        write("users/alice.yaml", "kind: User\nname: alice\nuserName: alice@example.test\ntargets: [directory]\n");
        write(
            "service-accounts/bot.yaml",
            &format!(
                "kind: ServiceAccount\nname: bot\nowner: alice\ntargets: [directory]\ncredentials:\n  - name: api\n    type: secret\n    lifetime: 30d\n    deliver: {{keyVault: {{vault: \"{url}\", secret: bot-api}}}}\n"
            ),
        );
        let loaded = keyward::load::load_dir(root).unwrap();
        let v = keyward::validate::validate(&loaded);
        assert!(!v.has_errors(), "{:#?}", v.diagnostics);
        let state = v.state.unwrap();
        let kv = keyward::credential::keyvault::from_settings(&state, root).unwrap().expect("an Entra identity");
        let sinks = Sinks::new(root).with_key_vault(kv);
        let d = state.service_accounts.values().next().unwrap().credentials[0].deliver.clone().unwrap();
        let value = generate::secret().unwrap();
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        sinks.deliver(&d, &Material::Secret(value.clone()), start, end).await.unwrap();
        assert_eq!(&vault.current("bot-api").unwrap().value, value.expose());
    }

    #[tokio::test]
    async fn the_fake_refuses_what_the_service_refuses() {
        let w = world();
        let http = reqwest::Client::new();
        // No token: 401.
        let r = http.get(format!("{}/secrets/s?api-version=7.4", w.url)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let token = w.tokens.bearer().await.unwrap();
        // No api-version: 400; unknown secret: 404 SecretNotFound.
        let r = http.get(format!("{}/secrets/s", w.url)).bearer_auth(token.expose()).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r =
            http.get(format!("{}/secrets/s?api-version=7.4", w.url)).bearer_auth(token.expose()).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "SecretNotFound");
    }

    #[tokio::test]
    async fn without_key_vault_access_delivery_fails_clearly() {
        let sinks = Sinks::new(std::path::Path::new("."));
        let d = Deliver::KeyVault(KeyVaultSink { vault: "https://kv.vault.azure.net".into(), secret: "s".into() });
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2026-12-28T12:00:00Z"));
        let e = sinks.deliver(&d, &Material::Secret(generate::secret().unwrap()), start, end).await.unwrap_err();
        assert!(e.to_string().contains("no Key Vault access"), "{e}");
    }
}

/// Apply through the library with a provider that records what it is handed: the current
/// certificate (read back from the file sink) signs the proof of the next rotation.
mod apply_path {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use keyward::apply::{AuditContext, CredentialContext, execute_with};
    use keyward::credential::proof::SigningCertificate;
    use keyward::credential::sink::Sinks;
    use keyward::model::{DesiredState, LiveTarget, Name, Timestamp};
    use keyward::plan::{self, Change, ConfigRef, PlanInput};
    use keyward::provider::file::FileProvider;
    use keyward::provider::handle::{Opened, Session, Writing};
    use keyward::provider::{
        Access, ApplyError, Capabilities, IssueMaterial, IssueRequest, Issued, Provider, ProviderError,
    };

    /// (credential name, proof thumbprint) per certificate issued.
    type Proofs = Arc<Mutex<Vec<(String, Option<String>)>>>;

    #[derive(Default, Clone)]
    struct Seen {
        /// (credential name, proof thumbprint) per certificate issued.
        proofs: Proofs,
        /// Thumbprints of the certificates uploaded.
        uploaded: Arc<Mutex<Vec<String>>>,
    }

    struct Recording {
        inner: FileProvider,
        seen: Seen,
    }

    #[async_trait]
    impl Provider for Recording {
        fn capabilities(&self) -> &Capabilities {
            self.inner.capabilities()
        }
        async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
            self.inner.read().await
        }
        async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
            self.inner.apply(changes).await
        }
        async fn issue(&mut self, request: &IssueRequest<'_>) -> Result<Issued, ApplyError> {
            if let IssueMaterial::Certificate { der, thumbprint, proof } = &request.material {
                assert_eq!(keyward::credential::generate::thumbprint(der), *thumbprint);
                let proof = proof.map(SigningCertificate::thumbprint);
                self.seen.proofs.lock().unwrap().push((request.name.to_string(), proof));
                self.seen.uploaded.lock().unwrap().push(thumbprint.to_string());
            }
            self.inner.issue(request).await
        }
        async fn remove_credential(
            &mut self,
            account: &str,
            id: &str,
            proof: Option<&SigningCertificate>,
        ) -> Result<(), ApplyError> {
            self.inner.remove_credential(account, id, proof).await
        }
    }

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    async fn run(root: &std::path::Path, state: &DesiredState, seen: &Seen, now: Timestamp) -> Vec<Change> {
        let name = Name::new("directory").unwrap();
        let target = &state.settings.targets[&name];
        let inner =
            FileProvider::open(target, root, std::path::Path::new(".keyward/directory.json"), Access::Write).unwrap();
        let opened = Opened::from_provider(Box::new(Recording { inner, seen: seen.clone() }));
        let caps: BTreeMap<Name, Capabilities> = [(name.clone(), opened.capabilities().clone())].into();
        let (read, session) = opened.read().await.unwrap();
        let live: BTreeMap<Name, LiveTarget> = [(name.clone(), read)].into();
        let state_path = keyward::credential::state::path(root, std::path::Path::new(&state.settings.audit_path));
        let undelivered = keyward::credential::state::load(&state_path).unwrap();
        let input = PlanInput {
            desired: state,
            live: &live,
            capabilities: &caps,
            now,
            baseline: None,
            undelivered: &undelivered,
            previous: None,
        };
        let changes = plan::plan_changes(&input).unwrap();
        let config = ConfigRef { digest: "sha256:test".into(), commit: None };
        let plan = plan::assemble(changes.clone(), config, vec![name.clone()], now);
        let mut providers: BTreeMap<Name, Session<Writing>> = [(name, session)].into();
        let store = keyward::state::open(&state.settings, root).unwrap();
        let mut audit = keyward::state::AuditTrail::open(store.clone()).await.unwrap();
        let ctx = AuditContext {
            actor: "test".into(),
            commit: None,
            plan_hash: "sha256:test".into(),
            clock: chrono::Utc::now,
            provenance: None,
            approvals: Default::default(),
        };
        let creds = CredentialContext { sinks: Sinks::new(root), state: store, now };
        let report = execute_with(&plan, &mut providers, &mut audit, &ctx, &creds, &mut |_, _| {}).await.unwrap();
        assert!(report.all_applied(), "{:?}", report.outcomes);
        changes
    }

    #[tokio::test]
    async fn the_current_certificate_from_the_sink_signs_the_next_rotation() {
        let s = super::Sandbox::example("quickstart");
        let loaded = keyward::load::load_dir(&s.root).unwrap();
        let state = keyward::validate::validate(&loaded).state.unwrap();
        let seen = Seen::default();
        run(&s.root, &state, &seen, t("2026-11-28T12:00:00Z")).await;
        // First certificate: no current one to prove possession with.
        assert_eq!(seen.proofs.lock().unwrap()[0], ("bank-api-cert@2026-11-28".to_string(), None));
        let first = seen.uploaded.lock().unwrap()[0].clone();
        let changes = run(&s.root, &state, &seen, t("2027-02-13T00:00:00Z")).await;
        assert!(changes.iter().any(|c| c.action == keyward::plan::Action::Rotate));
        let proofs = seen.proofs.lock().unwrap().clone();
        assert_eq!(proofs[1], ("bank-api-cert@2027-02-13".to_string(), Some(first)));
        // The audit log records the issuance and the delivery, by name and sink only.
        let audit = s.read(".keyward/audit.jsonl");
        assert!(audit.contains("issued `bank-api-cert@2027-02-13`"), "{audit}");
        assert!(audit.contains("delivered to file .keyward/secrets/payments-bot.pem"), "{audit}");
    }
}

#[test]
fn without_key_algorithm_the_encryption_policy_decides() {
    use x509_parser::prelude::*;
    let s = Sandbox::example("quickstart");
    s.edit("service-accounts/payments-bot.yaml", "    keyAlgorithm: ecdsa-p256\n", "");
    s.edit("policies/encryption.yaml", "allowedCurves: [p256, p384]", "allowedCurves: [p384]");
    let plan = s.plan_json();
    assert_eq!(change(&plan, "directory.credential.payments-bot/bank-api-cert")["after"]["keyAlgorithm"], "ecdsa-p384");
    s.apply_ok();
    let pem = s.read(".keyward/secrets/payments-bot.pem");
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&p.contents).unwrap();
    assert_eq!(cert.public_key().parsed().unwrap().key_size(), 384);
    // No curve allowed: RSA of at least minRsaBits.
    s.edit(
        "policies/encryption.yaml",
        "minRsaBits: 3072, allowedCurves: [p384]",
        "minRsaBits: 4096, allowedCurves: []",
    );
    let mut s = s;
    s.now = "2027-02-20T12:00:00Z".into();
    let plan = s.plan_json();
    assert_eq!(change(&plan, "directory.credential.payments-bot/bank-api-cert")["after"]["keyAlgorithm"], "rsa-4096");
}

#[test]
fn drift_notices_credentials_due_and_counts_them_in_the_metrics() {
    let mut s = sandbox();
    s.apply_ok();
    s.now = "2027-02-13T12:00:00Z".into();
    let metrics = s.path("metrics.prom");
    let m = metrics.to_string_lossy().into_owned();
    let r = s.run(&["drift", "{dir}", "--metrics-file", &m]);
    r.expect(2);
    assert!(r.stdout.contains("directory.credential.payments-bot/bank-api-cert will be rotated"), "{}", r.stdout);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("keyward_credentials_needing_rotation{state=\"rotation-due\"} 1\n"), "{text}");
    // webhook-secret (lifetime 30d) ended on 2026-12-28.
    assert!(text.contains("keyward_credentials_needing_rotation{state=\"expired\"} 1\n"), "{text}");
    // drift --notify alerts it (address, action and reason kind; never material).
    let (url, bodies) = support::webhook("/hooks/alerts");
    let text = s.read("keyward.yaml");
    s.write("keyward.yaml", &format!("{text}\nnotify:\n  webhook: ${{env:KEYWARD_TEST_WEBHOOK}}\n"));
    s.run_with_env(&["drift", "{dir}", "--notify"], &[("KEYWARD_TEST_WEBHOOK", url.as_str())]).expect(2);
    let body = bodies.recv_timeout(std::time::Duration::from_secs(10)).expect("the webhook got the alert");
    assert!(body.contains("rotate `directory.credential.payments-bot/bank-api-cert` (policy)"), "{body}");
    assert!(!body.contains(s.read(".keyward/secrets/webhook.txt").trim()), "{body}");
    // The access review lists it, with what the next apply does.
    let r = s.run(&["audit", "review", "{dir}", "--format", "json"]);
    r.expect(0);
    let review = r.json();
    let item = review["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["section"] == "credentials" && i["subject"] == "payments-bot/bank-api-cert@2026-11-28")
        .unwrap_or_else(|| panic!("{review:#}"));
    assert_eq!(item["status"], "rotation-due");
    assert!(item["detail"].as_str().unwrap().contains("the next apply rotates it"));
}

#[test]
fn key_vault_sinks_are_checked_offline() {
    let s = Sandbox::example("quickstart");
    s.edit(
        "service-accounts/payments-bot.yaml",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}",
        "    deliver: {keyVault: {vault: \"http://kv.example.com\", secret: bad_name}}",
    );
    let r = s.run(&["validate", "{dir}"]);
    r.expect(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("`bad_name` is not a Key Vault secret name"), "{all}");
    assert!(all.contains("is not an https URL"), "{all}");
}

#[test]
fn key_vault_delivery_without_a_token_source_is_recorded_as_undelivered() {
    let s = Sandbox::example("quickstart");
    s.edit(
        "service-accounts/payments-bot.yaml",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}",
        "    deliver: {keyVault: {vault: \"https://kv.vault.azure.net\", secret: payments-bot}}",
    );
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stdout.contains("no Key Vault access is configured"), "{}", r.stdout);
    let state: Value = serde_json::from_str(&s.read(".keyward/undelivered.json")).unwrap();
    assert_eq!(state["undelivered"][0]["name"], "bank-api-cert@2026-11-28");
}

#[test]
fn a_failed_rotation_keeps_the_current_credential_and_is_retried() {
    let mut s = sandbox();
    s.apply_ok();
    let delivered = s.read(".keyward/secrets/payments-bot.pem");
    at(&mut s, "2027-02-13T12:00:00Z");
    std::fs::rename(s.path(".keyward/secrets"), s.path(".keyward/secrets-away")).unwrap();
    s.write(".keyward/secrets", "not a folder");
    s.run(&["apply", "{dir}", "--auto-approve"]).expect(1);
    assert!(names(&s).contains(&"bank-api-cert@2026-11-28".to_string()));
    assert!(names(&s).contains(&"bank-api-cert@2027-02-13".to_string()));

    at(&mut s, "2027-02-14T12:00:00Z");
    let plan = s.plan_json();
    let cert = change(&plan, "directory.credential.payments-bot/bank-api-cert");
    assert_eq!(
        cert["reason"]["message"],
        "not delivered: `bank-api-cert@2027-02-13` was issued on 2027-02-13 but never reached its sink"
    );
    // The one consumers hold stays; the undelivered one goes.
    assert_eq!(change(&plan, "directory.credential.payments-bot/bank-api-cert@2027-02-13")["action"], "revoke");
    assert!(!cred_changes(&plan).iter().any(|(a, _)| a.ends_with("bank-api-cert@2026-11-28")));
    std::fs::remove_file(s.path(".keyward/secrets")).unwrap();
    std::fs::rename(s.path(".keyward/secrets-away"), s.path(".keyward/secrets")).unwrap();
    assert_eq!(s.read(".keyward/secrets/payments-bot.pem"), delivered, "the failed run left the sink alone");
    s.apply_ok();
    let now = names(&s);
    assert!(now.contains(&"bank-api-cert@2026-11-28".to_string()), "{now:?}");
    assert!(now.contains(&"bank-api-cert@2027-02-14".to_string()), "{now:?}");
    assert!(!now.contains(&"bank-api-cert@2027-02-13".to_string()), "{now:?}");
    assert_ne!(s.read(".keyward/secrets/payments-bot.pem"), delivered);
}

/// An issue whose answer was lost (a reset or timeout after the request was sent) leaves a
/// record with no id, made before the request. A live credential of that name is then treated
/// as never delivered: replaced, and removed, instead of being taken for the current one (whose
/// overlap would, later, revoke the credential the consumer actually holds).
#[test]
fn a_credential_whose_issue_was_never_confirmed_is_replaced_not_trusted() {
    let s = sandbox();
    s.apply_ok();
    assert!(cred_changes(&s.plan_json()).is_empty());
    // As the record of an issue of `webhook-secret` whose answer never came would read.
    s.write(
        ".keyward/undelivered.json",
        r#"{"undelivered": [{"target": "directory", "account": "payments-bot", "id": "",
            "name": "webhook-secret@2026-11-28", "issued": "2026-11-28T00:00:00Z"}]}"#,
    );
    let plan = s.plan_json();
    let secret = change(&plan, "directory.credential.payments-bot/webhook-secret");
    assert_eq!(secret["action"], "rotate");
    assert!(secret["reason"]["message"].as_str().unwrap().starts_with("not delivered:"), "{secret:#}");
    let stale = change(&plan, "directory.credential.payments-bot/webhook-secret@2026-11-28");
    assert_eq!(stale["action"], "revoke");
    // The certificate, confirmed and delivered, is left alone.
    assert!(cred_changes(&plan).iter().all(|(a, _)| !a.contains("bank-api-cert")), "{plan:#}");
}
