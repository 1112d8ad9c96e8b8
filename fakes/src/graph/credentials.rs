//! Application credentials (§2.5): passwords, certificates and the proof `addKey` and
//! `removeKey` need.

use serde_json::{Value, json};

use super::http::{Req, Resp, iso, now_iso};
use super::tenant::Tenant;

impl Tenant {
    pub(super) fn clock(&self) -> String {
        self.now.map(iso).unwrap_or_else(now_iso)
    }

    pub(super) fn secret_text(&mut self) -> Result<String, Resp> {
        use base64::Engine as _;
        use ring::rand::SecureRandom as _;
        let mut b = [0u8; 30];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| Resp::error(500, "InternalServerError", "no randomness"))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
    }

    /// `addPassword` (documented §2.5): all fields optional; start defaults to now and end to two
    /// years later (the default of that doc version); `secretText` is in this answer only.
    pub(super) fn add_password(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let pc = req.body.as_ref().map(|b| b["passwordCredential"].clone()).unwrap_or(Value::Null);
        let secret = match self.secret_text() {
            Ok(s) => s,
            Err(r) => return r,
        };
        let now = self.clock();
        let start = pc["startDateTime"].as_str().map(str::to_string).unwrap_or(now);
        let end = pc["endDateTime"].as_str().map(str::to_string).unwrap_or_else(|| {
            let y: i64 = start[..4].parse().unwrap_or(2000);
            format!("{:04}{}", y + 2, &start[4..])
        });
        let key_id = self.new_id(7);
        let stored = json!({"customKeyIdentifier": null, "displayName": pc["displayName"].clone(), "endDateTime": end,
            "hint": &secret[..3], "keyId": key_id, "secretText": null, "startDateTime": start});
        let mut answer = stored.clone();
        answer["secretText"] = json!(secret);
        self.secrets.push(secret);
        let a = self.applications.get_mut(id).expect("checked");
        a["passwordCredentials"].as_array_mut().expect("an array").push(stored);
        self.audit(
            "Update application – Certificates and secrets management ",
            "ApplicationManagement",
            id,
            Tenant::app_actor(),
        );
        Resp::ok(answer)
    }

    /// `removePassword` (documented §2.5); an unknown keyId is `404` (assumed code).
    pub(super) fn remove_password(&mut self, id: &str, req: &Req) -> Resp {
        let Some(key_id) = req.body.as_ref().and_then(|b| b["keyId"].as_str()).map(str::to_string) else {
            return Resp::bad("keyId is required");
        };
        let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
        let list = a["passwordCredentials"].as_array_mut().expect("an array");
        let before = list.len();
        list.retain(|p| p["keyId"].as_str() != Some(&key_id));
        if list.len() == before {
            return Resp::error(
                404,
                "Request_ResourceNotFound",
                &format!("No password credential found with keyId {key_id}."),
            );
        }
        Resp::no_content()
    }

    /// Checks a key credential to add (assumed: Graph parses the certificate and derives
    /// `customKeyIdentifier`, the base64 of its SHA-1, and, when not given, the dates).
    pub(super) fn checked_key(&mut self, k: &Value) -> Result<Value, Resp> {
        use base64::Engine as _;
        if k["type"].as_str() != Some("AsymmetricX509Cert") || k["usage"].as_str() != Some("Verify") {
            return Err(Resp::bad("Only AsymmetricX509Cert key credentials with usage Verify are modelled."));
        }
        let der = k["key"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| Resp::bad("Key credential 'key' is required and must be base64."))?;
        let (nb, na) = crate::proof::validity(&der)
            .ok_or_else(|| Resp::bad("Key credential 'key' is not an X.509 certificate."))?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let mut out = k.clone();
        out["customKeyIdentifier"] = json!(base64::engine::general_purpose::STANDARD.encode(sha1.as_ref()));
        if out["keyId"].as_str().is_none() {
            out["keyId"] = json!(self.new_id(8));
        }
        if out["startDateTime"].as_str().is_none() {
            out["startDateTime"] = json!(iso(nb.max(0) as u64));
        }
        if out["endDateTime"].as_str().is_none() {
            out["endDateTime"] = json!(iso(na.max(0) as u64));
        }
        Ok(out)
    }

    /// The keyCredentials of a PATCH: every entry must carry its certificate (`key`), the
    /// existing ones too, as the whole list is replaced (assumed, as Graph documents no merge).
    pub(super) fn checked_keys(&mut self, keys: &Value) -> Result<Vec<Value>, Resp> {
        let Some(list) = keys.as_array() else { return Err(Resp::bad("keyCredentials must be an array")) };
        list.iter().map(|k| self.checked_key(k)).collect()
    }

    /// The application's current certificates (key id, DER) by this fake's clock.
    pub(super) fn current_certificates(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let now = self.clock();
        self.applications[id]["keyCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| {
                k["startDateTime"].as_str().is_some_and(|s| s <= now.as_str())
                    && k["endDateTime"].as_str().is_some_and(|e| e > now.as_str())
            })
            .filter_map(|k| {
                let der = base64::engine::general_purpose::STANDARD.decode(k["key"].as_str()?).ok()?;
                Some((k["keyId"].as_str()?.to_string(), der))
            })
            .collect()
    }

    /// The proof of `req` checked against the application's current certificates (§2.5).
    pub(super) fn check_proof(&mut self, id: &str, op: &str, req: &Req) -> Result<(), Resp> {
        let current = self.current_certificates(id);
        if current.is_empty() {
            // Documented §2.5: an application without a valid certificate must use PATCH.
            return Err(Resp::bad(
                "The application has no valid certificate to verify the proof; update keyCredentials instead.",
            ));
        }
        let Some(token) = req.body.as_ref().and_then(|b| b["proof"].as_str()) else {
            return Err(Resp::bad("proof is required"));
        };
        match crate::proof::verify(token, id, current.iter().map(|(k, d)| (k.as_str(), d.as_slice()))) {
            Ok(signer) => {
                self.proofs.push((op.to_string(), id.to_string(), signer));
                Ok(())
            }
            Err(why) => Err(Resp::error(400, "Request_BadRequest", &format!("Invalid proof: {why}."))),
        }
    }

    /// `addKey` (documented §2.5): the key credential, with a proof signed by a current
    /// certificate; `passwordCredential` only for `X509CertAndPassword` (not modelled).
    pub(super) fn add_key(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let k = req.body.as_ref().map(|b| b["keyCredential"].clone()).unwrap_or(Value::Null);
        let k = match self.checked_key(&k) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if let Err(r) = self.check_proof(id, "addKey", req) {
            return r;
        }
        let a = self.applications.get_mut(id).expect("checked");
        a["keyCredentials"].as_array_mut().expect("an array").push(k.clone());
        let mut answer = k;
        answer["key"] = Value::Null;
        Resp::ok(answer)
    }

    /// `removeKey` (documented §2.5): the keyId and a proof.
    pub(super) fn remove_key(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let Some(key_id) = req.body.as_ref().and_then(|b| b["keyId"].as_str()).map(str::to_string) else {
            return Resp::bad("keyId is required");
        };
        if let Err(r) = self.check_proof(id, "removeKey", req) {
            return r;
        }
        let list = self.applications.get_mut(id).expect("checked")["keyCredentials"].as_array_mut().expect("an array");
        let before = list.len();
        list.retain(|k| k["keyId"].as_str() != Some(&key_id));
        if list.len() == before {
            return Resp::error(
                404,
                "Request_ResourceNotFound",
                &format!("No key credential found with keyId {key_id}."),
            );
        }
        Resp::no_content()
    }
}
