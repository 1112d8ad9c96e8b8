//! Service-account credentials on Microsoft Graph, end to end against the Graph fake
//! (`keyward_fakes::graph`): the quick start's payments-bot, retargeted to Graph, gets its
//! certificate (first by a PATCH of `keyCredentials`, as keyward holds no certificate of the
//! application yet, then by `addKey` with a proof token) and a client secret (`addPassword`),
//! delivered to files; with the clock walked forward the certificate rotates inside its window,
//! old and new coexist through the overlap, and the old one is removed with `removeKey`, whose
//! proof the fake verified against the certificate keyward delivered last. No client secret or
//! private key appears in any output, plan or audit log, at trace level.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward_fakes::graph::Graph;
use serde_json::Value;
use support::{Run, Sandbox};

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const SECRET_VAR: &str = "KEYWARD_TEST_GRAPH_SECRET";

/// A secret unique to this run, never a literal.
fn canary(label: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("canary-{label}-{:016x}", h.finish())
}

/// The quick start on the fake, payments-bot with a client secret added to its certificate.
fn sandbox(url: &str) -> Sandbox {
    let sb = Sandbox::example("quickstart");
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: {TENANT}\n    clientId: {CLIENT}\n    clientSecret: ${{env:{SECRET_VAR}}}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb.edit(
        "service-accounts/payments-bot.yaml",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}",
        "    deliver: {file: .keyward/secrets/payments-bot.pem}\n  - name: webhook-secret\n    type: secret\n    lifetime: 30d\n    rotateBefore: 5d\n    overlap: 2d\n    deliver: {file: .keyward/secrets/webhook.txt}",
    );
    sb
}

/// Moves both clocks: keyward's (`KEYWARD_NOW`) and the fake's, which judges which
/// certificates are current.
fn at(sb: &mut Sandbox, g: &Graph, now: &str) {
    sb.now = now.to_string();
    let t = chrono::DateTime::parse_from_rfc3339(now).unwrap().timestamp();
    g.set_now(t as u64);
}

fn app(g: &Graph) -> Value {
    g.applications().into_iter().find(|a| a["tags"][0] == "keyward:payments-bot").expect("the service account")
}

/// (displayName, keyId) of a credential list, sorted by name.
fn listed(app: &Value, field: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = app[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["displayName"].as_str().unwrap_or_default().to_string(), c["keyId"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn names(app: &Value, field: &str) -> Vec<String> {
    listed(app, field).into_iter().map(|c| c.0).collect()
}

/// The key id of the key credential holding the certificate of a delivered PEM.
fn key_id_of_pem(app: &Value, pem: &str) -> String {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(p.label, "CERTIFICATE");
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &p.contents);
    let id = STANDARD.encode(sha1.as_ref());
    let k = app["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["customKeyIdentifier"] == id.as_str())
        .unwrap_or_else(|| panic!("the delivered certificate is on the application: {app:#}"));
    k["keyId"].as_str().unwrap().to_string()
}

fn credential_changes(plan: &Value) -> Vec<(String, String)> {
    support::changes(plan).into_iter().filter(|(a, _)| a.contains(".credential.")).collect()
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs keyward at trace level, keeping what it printed.
fn traced(sb: &Sandbox, secret: &str, args: &[&str], outputs: &mut Vec<(String, String)>) -> Run {
    let mut args = args.to_vec();
    args.extend(["--log-level", "trace"]);
    let r = sb.run_with_env(&args, &[(SECRET_VAR, secret)]);
    outputs.push((format!("{args:?}"), format!("{}\n{}", r.stdout, r.stderr)));
    r
}

fn plan(sb: &Sandbox, secret: &str, outputs: &mut Vec<(String, String)>) -> Value {
    let r = traced(sb, secret, &["plan", "{dir}", "--format", "json", "--out", "{dir}/plan.json"], outputs);
    outputs.push(("plan file".into(), sb.read("plan.json")));
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

fn apply(sb: &Sandbox, secret: &str, outputs: &mut Vec<(String, String)>) {
    let r = traced(sb, secret, &["apply", "{dir}", "--auto-approve"], outputs);
    assert_eq!(r.code, 0, "apply failed:\n{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_graph_service_account_rotates_its_certificate_and_secret_end_to_end() {
    let client_secret = canary("client-secret");
    let g = Graph::new();
    g.entra().register(CLIENT, Some(&client_secret));
    let fake = g.serve();
    let mut sb = sandbox(&fake.url());
    let mut outputs = Vec::new();
    let mut pems = Vec::new();
    at(&mut sb, &g, "2026-11-28T12:00:00Z");

    // Day 0: the application is created, then its certificate and secret are issued. keyward
    // holds no certificate of it, so the certificate goes in by a PATCH of keyCredentials.
    let p = plan(&sb, &client_secret, &mut outputs);
    let changes = credential_changes(&p);
    assert!(
        changes.contains(&("directory.credential.payments-bot/bank-api-cert".into(), "rotate".into())),
        "{changes:?}"
    );
    apply(&sb, &client_secret, &mut outputs);
    let a = app(&g);
    assert_eq!(names(&a, "keyCredentials"), ["bank-api-cert@2026-11-28"]);
    assert_eq!(names(&a, "passwordCredentials"), ["webhook-secret@2026-11-28"]);
    assert_eq!(a["passwordCredentials"][0]["endDateTime"], "2026-12-28T12:00:00Z");
    assert_eq!(a["keyCredentials"][0]["endDateTime"], "2027-02-26T12:00:00Z");
    assert_eq!(g.key_patches(), 1);
    assert!(g.proofs().is_empty());
    // The secret Graph generated is the one delivered, only once.
    let secrets = g.secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(sb.read(".keyward/secrets/webhook.txt").trim_end(), secrets[0]);
    #[cfg(unix)]
    {
        assert_eq!(mode(&sb.path(".keyward/secrets/payments-bot.pem")), 0o600);
        assert_eq!(mode(&sb.path(".keyward/secrets/webhook.txt")), 0o600);
    }
    let first_pem = sb.read(".keyward/secrets/payments-bot.pem");
    pems.push(first_pem.clone());
    let first_key = key_id_of_pem(&a, &first_pem);
    // Read back from Graph: converged.
    assert!(credential_changes(&plan(&sb, &client_secret, &mut outputs)).is_empty());

    // Inside the certificate's window: a new one is added with addKey, its proof signed by the
    // delivered certificate; the old one stays through the overlap.
    at(&mut sb, &g, "2027-02-12T12:00:00Z");
    let p = plan(&sb, &client_secret, &mut outputs);
    let cert = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "directory.credential.payments-bot/bank-api-cert")
        .unwrap_or_else(|| panic!("{p:#}"));
    assert_eq!(cert["before"]["credential"], "bank-api-cert@2026-11-28");
    assert_eq!(cert["after"]["credential"], "bank-api-cert@2027-02-12");
    apply(&sb, &client_secret, &mut outputs);
    let a = app(&g);
    assert_eq!(names(&a, "keyCredentials"), ["bank-api-cert@2026-11-28", "bank-api-cert@2027-02-12"]);
    let app_id = a["id"].as_str().unwrap().to_string();
    assert_eq!(g.proofs(), [("addKey".to_string(), app_id.clone(), first_key.clone())]);
    assert_eq!(g.key_patches(), 1, "no PATCH once keyward holds a current certificate");
    let second_pem = sb.read(".keyward/secrets/payments-bot.pem");
    assert_ne!(second_pem, first_pem);
    pems.push(second_pem.clone());
    let second_key = key_id_of_pem(&a, &second_pem);
    // The 30-day secret had expired: a new one from addPassword, delivered.
    let secrets = g.secrets();
    assert_eq!(secrets.len(), 2);
    assert_eq!(sb.read(".keyward/secrets/webhook.txt").trim_end(), secrets[1]);
    assert!(names(&a, "passwordCredentials").contains(&"webhook-secret@2027-02-12".to_string()));

    // Through the overlap both certificates stay.
    at(&mut sb, &g, "2027-02-19T11:59:59Z");
    let p = plan(&sb, &client_secret, &mut outputs);
    assert!(credential_changes(&p).iter().all(|(a, _)| !a.contains("bank-api-cert")), "{p:#}");

    // After it: the old one goes with removeKey, its proof signed by the current certificate.
    at(&mut sb, &g, "2027-02-19T12:00:00Z");
    let p = plan(&sb, &client_secret, &mut outputs);
    let old = "directory.credential.payments-bot/bank-api-cert@2026-11-28".to_string();
    assert!(credential_changes(&p).contains(&(old, "revoke".into())), "{p:#}");
    apply(&sb, &client_secret, &mut outputs);
    let a = app(&g);
    assert_eq!(listed(&a, "keyCredentials"), [("bank-api-cert@2027-02-12".to_string(), second_key.clone())]);
    assert_eq!(g.proofs().last().unwrap(), &("removeKey".to_string(), app_id, second_key));
    // The expired secret has been removed as well: only the delivered one is left.
    assert_eq!(names(&a, "passwordCredentials"), ["webhook-secret@2027-02-12"]);
    assert!(credential_changes(&plan(&sb, &client_secret, &mut outputs)).is_empty());

    // One request per credential change, plus the read of the keys the first PATCH kept.
    let posts = |op: &str| g.log().count("POST", |p| p.ends_with(&format!("/{op}")));
    assert_eq!([posts("addPassword"), posts("removePassword"), posts("addKey"), posts("removeKey")], [2, 1, 1, 1]);
    assert_eq!(g.log().count("GET", |p| p.starts_with("/v1.0/applications/")), 1);

    // Canaries: no client secret, private key or token in any output, plan or audit log.
    outputs.push(("audit log".into(), sb.read(".keyward/audit.jsonl")));
    let mut needles = vec![client_secret.clone(), "fake-access-token-".to_string()];
    needles.extend(g.secrets());
    for pem in &pems {
        let key = pem.split("-----BEGIN PRIVATE KEY-----").nth(1).unwrap().split("-----END").next().unwrap();
        needles.extend(key.lines().map(str::trim).filter(|l| l.len() >= 16).map(str::to_string));
    }
    assert!(needles.len() > 4);
    for (label, text) in &outputs {
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{label} shows a secret");
        }
    }
    // Trace logging ran (the outputs are not trivially clean).
    assert!(outputs.iter().any(|(_, t)| t.contains("TRACE")), "trace logging ran");
}

#[test]
fn without_the_delivered_certificate_the_old_one_is_removed_by_a_patch() {
    let client_secret = canary("client-secret");
    let g = Graph::new();
    g.entra().register(CLIENT, Some(&client_secret));
    let fake = g.serve();
    let mut sb = sandbox(&fake.url());
    let mut outputs = Vec::new();
    at(&mut sb, &g, "2026-11-28T12:00:00Z");
    apply(&sb, &client_secret, &mut outputs);
    at(&mut sb, &g, "2027-02-12T12:00:00Z");
    apply(&sb, &client_secret, &mut outputs);
    let a = app(&g);
    assert_eq!(names(&a, "keyCredentials"), ["bank-api-cert@2026-11-28", "bank-api-cert@2027-02-12"]);
    let current = key_id_of_pem(&a, &sb.read(".keyward/secrets/payments-bot.pem"));
    // The sink lost the certificate: no proof can be signed, so the key list is PATCHed.
    std::fs::remove_file(sb.path(".keyward/secrets/payments-bot.pem")).unwrap();
    at(&mut sb, &g, "2027-02-19T12:00:00Z");
    apply(&sb, &client_secret, &mut outputs);
    let a = app(&g);
    assert_eq!(listed(&a, "keyCredentials"), [("bank-api-cert@2027-02-12".to_string(), current)]);
    assert_eq!(g.key_patches(), 2);
    assert_eq!(g.proofs().iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["addKey"]);
    // The PATCH kept the remaining certificate whole.
    assert!(a["keyCredentials"][0]["key"].as_str().is_some_and(|k| !k.is_empty()));
}

// -- The fake refuses what Graph refuses ------------------------------------------------------

mod fake {
    use keyward::credential::generate;
    use keyward::credential::proof::{SigningCertificate, proof_token};
    use keyward::model::{KeyAlgorithm, Timestamp};
    use serde_json::{Value, json};

    use super::*;

    struct Session {
        http: reqwest::Client,
        url: String,
        token: String,
    }

    impl Session {
        async fn new(g: &Graph, url: &str) -> Session {
            let secret = canary("client-secret");
            g.entra().register(CLIENT, Some(&secret));
            let http = reqwest::Client::new();
            let form = format!(
                "grant_type=client_credentials&client_id={CLIENT}&client_secret={secret}&scope={}",
                format!("{url}/.default").replace(':', "%3A").replace('/', "%2F")
            );
            let r = http
                .post(format!("{url}/{TENANT}/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            let token = v["access_token"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
            Session { http, url: url.to_string(), token }
        }

        async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
            let mut rb = self.http.request(method, format!("{}/v1.0{path}", self.url)).bearer_auth(&self.token);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    }

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn key(c: &generate::NewCertificate, name: &str) -> Value {
        json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": STANDARD.encode(&c.der), "displayName": name})
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn proofs_keys_and_secrets_follow_the_reference_sheet() {
        let g = Graph::new();
        let fake = g.serve();
        let s = Session::new(&g, &fake.url()).await;
        g.set_now(t("2026-12-01T00:00:00Z").timestamp() as u64);
        let (start, end) = (t("2026-11-28T12:00:00Z"), t("2027-02-26T12:00:00Z"));
        let (status, a) = s.send(reqwest::Method::POST, "/applications", Some(json!({"displayName": "bot"}))).await;
        assert_eq!(status, 201);
        let id = a["id"].as_str().unwrap().to_string();
        let (_, other) = s.send(reqwest::Method::POST, "/applications", Some(json!({"displayName": "other"}))).await;
        let other = other["id"].as_str().unwrap().to_string();

        // Without a valid certificate addKey is refused: the application must be PATCHed.
        let first = generate::certificate(KeyAlgorithm::EcdsaP256, "bot", start, end).unwrap();
        let signer = SigningCertificate::from_pem(first.pem.expose()).unwrap();
        let proof = proof_token(&signer, &id, start).unwrap();
        let body = json!({"keyCredential": key(&first, "c1"), "passwordCredential": null, "proof": proof.expose()});
        let (status, e) = s.send(reqwest::Method::POST, &format!("/applications/{id}/addKey"), Some(body)).await;
        assert_eq!(status, 400, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("update keyCredentials"), "{e}");
        let (status, _) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/applications/{id}"),
                Some(json!({"keyCredentials": [key(&first, "c1")]})),
            )
            .await;
        assert_eq!(status, 204);

        // `key` only on the single object with $select=keyCredentials.
        let (_, list) = s.send(reqwest::Method::GET, "/applications", None).await;
        let listed = list["value"].as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).unwrap().clone();
        assert_eq!(listed["keyCredentials"][0]["key"], Value::Null);
        assert_eq!(
            listed["keyCredentials"][0]["customKeyIdentifier"],
            STANDARD.encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &first.der).as_ref())
        );
        let (_, single) = s.send(reqwest::Method::GET, &format!("/applications/{id}"), None).await;
        assert_eq!(single["keyCredentials"][0]["key"], Value::Null);
        let (_, selected) =
            s.send(reqwest::Method::GET, &format!("/applications/{id}?$select=keyCredentials"), None).await;
        assert_eq!(selected["keyCredentials"][0]["key"], STANDARD.encode(&first.der));

        // addKey: the proof must name this application and be signed by one of its current
        // certificates (P-384 here, ES384).
        let second = generate::certificate(KeyAlgorithm::EcdsaP384, "bot", start, t("2027-05-27T12:00:00Z")).unwrap();
        let stranger = generate::certificate(KeyAlgorithm::EcdsaP256, "x", start, end).unwrap();
        let stranger = SigningCertificate::from_pem(stranger.pem.expose()).unwrap();
        let add =
            |proof: String| json!({"keyCredential": key(&second, "c2"), "passwordCredential": null, "proof": proof});
        let path = format!("/applications/{id}/addKey");
        for (proof, why) in [
            (proof_token(&signer, &other, start).unwrap(), "iss"),
            (proof_token(&stranger, &id, start).unwrap(), "not signed by a current certificate"),
            (keyward::model::Secret::new("x!.y.z".to_string()), "base64url"),
        ] {
            let (status, e) = s.send(reqwest::Method::POST, &path, Some(add(proof.expose().clone()))).await;
            assert_eq!(status, 400, "{e}");
            assert!(e["error"]["message"].as_str().unwrap().contains(why), "{why}: {e}");
        }
        assert!(g.proofs().is_empty());
        let (status, k) = s
            .send(reqwest::Method::POST, &path, Some(add(proof_token(&signer, &id, start).unwrap().expose().clone())))
            .await;
        assert_eq!(status, 200, "{k}");
        assert_eq!(k["key"], Value::Null);
        let second_id = k["keyId"].as_str().unwrap().to_string();

        // Once the first certificate has expired (by the fake's clock), its proofs are refused;
        // the second one's are accepted, for removeKey too.
        g.set_now(t("2027-03-01T00:00:00Z").timestamp() as u64);
        let stale = proof_token(&signer, &id, start).unwrap();
        let remove = |proof: &str| json!({"keyId": second_id, "proof": proof});
        let path = format!("/applications/{id}/removeKey");
        let (status, _) = s.send(reqwest::Method::POST, &path, Some(remove(stale.expose()))).await;
        assert_eq!(status, 400);
        let signer2 = SigningCertificate::from_pem(second.pem.expose()).unwrap();
        let good = proof_token(&signer2, &id, start).unwrap();
        // The expired first certificate is removed with a proof signed by the second.
        let first_id = selected["keyCredentials"][0]["keyId"].as_str().unwrap().to_string();
        let (status, e) =
            s.send(reqwest::Method::POST, &path, Some(json!({"keyId": first_id, "proof": good.expose()}))).await;
        assert_eq!(status, 204, "{e}");
        assert_eq!(g.proofs().len(), 2);
        assert_eq!(g.proofs()[1].0, "removeKey");
        assert_eq!(g.proofs()[1].2, second_id);

        // RSA (RS256): an RSA certificate added with the ECDSA one's proof proves its own removal.
        let rsa = generate::certificate(KeyAlgorithm::Rsa3072, "bot", start, t("2027-05-27T12:00:00Z")).unwrap();
        let body = json!({"keyCredential": key(&rsa, "c3"), "passwordCredential": null,
            "proof": proof_token(&signer2, &id, start).unwrap().expose()});
        let (status, k) = s.send(reqwest::Method::POST, &format!("/applications/{id}/addKey"), Some(body)).await;
        assert_eq!(status, 200, "{k}");
        let rsa_id = k["keyId"].as_str().unwrap().to_string();
        let rsa_signer = SigningCertificate::from_pem(rsa.pem.expose()).unwrap();
        let proof = proof_token(&rsa_signer, &id, start).unwrap();
        let (status, e) =
            s.send(reqwest::Method::POST, &path, Some(json!({"keyId": rsa_id, "proof": proof.expose()}))).await;
        assert_eq!(status, 204, "{e}");
        assert_eq!(g.proofs().last().unwrap().2, rsa_id);

        // addPassword: secretText in its answer only; PATCH of passwordCredentials is refused.
        let (status, p) = s
            .send(
                reqwest::Method::POST,
                &format!("/applications/{id}/addPassword"),
                Some(json!({"passwordCredential": {"displayName": "s@2027-03-01"}})),
            )
            .await;
        assert_eq!(status, 200);
        let text = p["secretText"].as_str().unwrap().to_string();
        assert_eq!(g.secrets(), std::slice::from_ref(&text));
        assert_eq!(p["hint"], &text[..3]);
        assert_eq!(p["startDateTime"], "2027-03-01T00:00:00Z");
        assert_eq!(p["endDateTime"], "2029-03-01T00:00:00Z");
        let (_, single) = s.send(reqwest::Method::GET, &format!("/applications/{id}"), None).await;
        assert_eq!(single["passwordCredentials"][0]["secretText"], Value::Null);
        assert!(!single.to_string().contains(&text));
        let (status, _) = s
            .send(reqwest::Method::PATCH, &format!("/applications/{id}"), Some(json!({"passwordCredentials": []})))
            .await;
        assert_eq!(status, 400);
        let key_id = p["keyId"].as_str().unwrap();
        let body = json!({"keyId": key_id});
        let (status, _) =
            s.send(reqwest::Method::POST, &format!("/applications/{id}/removePassword"), Some(body.clone())).await;
        assert_eq!(status, 204);
        let (status, _) =
            s.send(reqwest::Method::POST, &format!("/applications/{id}/removePassword"), Some(body)).await;
        assert_eq!(status, 404);
    }
}
