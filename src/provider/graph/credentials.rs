//! Service-account credentials: `addPassword`/`addKey`, `removePassword`/`removeKey`, and
//! `keyCredentials` when no proof can be signed.

use super::*;

impl GraphProvider {
    /// A request about application `app`; a `404` for one this run created is replication
    /// delay (§2.1), retried with bounded backoff as apply's batches do.
    async fn app_call(&self, app: &str, call: Call) -> Result<client::Outcome, GraphError> {
        let mut tries = 0u32;
        loop {
            match self.client.call(&call).await {
                Err(e) if e.status() == Some(404) && tries < 5 && self.created.contains(app) => {
                    tokio::time::sleep(Duration::from_millis(250 << tries)).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn entry(&self, account: &str) -> Result<&SaEntry, ApplyError> {
        if self.access != Access::Write {
            return Err(ApplyError::new("the target was opened read-only"));
        }
        let state = self.state.as_ref().ok_or_else(|| ApplyError::new("credential change before read"))?;
        state
            .service_accounts
            .get(account)
            .ok_or_else(|| ApplyError::new(format!("the service account {account} does not exist on the target")))
    }

    fn entry_mut(&mut self, account: &str) -> Option<&mut SaEntry> {
        self.state.as_mut()?.service_accounts.get_mut(account)
    }

    /// A proof token for application `app` (§2.5), valid from now.
    fn proof(&self, cert: &SigningCertificate, app: &str, what: &str) -> Result<Secret<String>, ApplyError> {
        let now = chrono::Utc::now();
        let nbf = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        proof_token(cert, app, nbf).map_err(|e| ApplyError::new(format!("cannot {what}: {e}")))
    }

    /// The application's key credentials with their `key` (returned only when selected on the
    /// single object, §2.5), for a PATCH that keeps them.
    async fn key_credentials(&self, app: &str, what: &str) -> Result<Vec<Value>, ApplyError> {
        let o = self
            .app_call(app, Call::new(Method::GET, format!("/applications/{app}?$select=keyCredentials"), None))
            .await
            .map_err(|e| write_error(what, e))?;
        let keys = o
            .body
            .as_ref()
            .and_then(|b| b.get("keyCredentials"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| k.get("key").and_then(Value::as_str).is_none_or(str::is_empty)) {
            return Err(ApplyError::new(format!(
                "cannot {what}: Graph did not return the key of the existing key credential {}, which a PATCH must keep",
                k.get("keyId").and_then(Value::as_str).unwrap_or("(without keyId)")
            )));
        }
        Ok(keys)
    }

    async fn set_key_credentials(&self, app: &str, keys: Vec<Value>, what: &str) -> Result<(), ApplyError> {
        self.app_call(
            app,
            Call::new(Method::PATCH, format!("/applications/{app}"), Some(json!({"keyCredentials": keys}))),
        )
        .await
        .map(|_| ())
        .map_err(|e| write_error(what, e))
    }

    /// Secrets: `addPassword` (§2.5), whose `secretText` is returned once and handed back
    /// for delivery. Certificates: `addKey` with a proof token signed by `proof` when it is one
    /// of the application's current certificates; otherwise the application's
    /// `keyCredentials` are set by PATCH, the existing ones kept (§2.5: an application without
    /// a valid certificate cannot use `addKey`).
    pub(super) async fn issue_credential(&mut self, request: &IssueRequest<'_>) -> Result<Issued, ApplyError> {
        let entry = self.entry(request.account)?;
        let app = entry.app_object_id.clone();
        let what = format!("issue `{}` on service account {}", request.name, request.account);
        match &request.material {
            IssueMaterial::Secret { .. } => {
                let body = json!({"passwordCredential": {
                    "displayName": request.name,
                    "startDateTime": wire::date_time(request.start),
                    "endDateTime": wire::date_time(request.end),
                }});
                let o = self
                    .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/addPassword"), Some(body)))
                    .await
                    .map_err(|e| write_error(&what, e))?;
                let b = o.body.unwrap_or(Value::Null);
                let id = str_of(&b, "keyId")
                    .ok_or_else(|| ApplyError::new(format!("cannot {what}: addPassword answered without a keyId")))?;
                let secret = b.get("secretText").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
                    ApplyError::new(format!(
                        "cannot {what}: addPassword answered without secretText; remove the password credential {id} by hand"
                    ))
                })?;
                let secret = Secret::new(secret.to_string());
                if let Some(e) = self.entry_mut(request.account) {
                    e.passwords.insert(id.clone());
                }
                Ok(Issued { id, secret: Some(secret) })
            }
            IssueMaterial::Certificate { der, thumbprint, proof } => {
                let new = wire::key_credential(der, request.name, request.start, request.end);
                let id = match proof.filter(|p| current_key(entry, p)) {
                    Some(p) => {
                        let token = self.proof(p, &app, &what)?;
                        let body = json!({"keyCredential": new, "passwordCredential": null, "proof": token.expose()});
                        let o = self
                            .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/addKey"), Some(body)))
                            .await
                            .map_err(|e| write_error(&what, e))?;
                        o.body
                            .as_ref()
                            .and_then(|b| str_of(b, "keyId"))
                            .ok_or_else(|| ApplyError::new(format!("cannot {what}: addKey answered without a keyId")))?
                    }
                    None => {
                        let id = wire::random_guid().map_err(|e| ApplyError::new(format!("cannot {what}: {e}")))?;
                        let mut keys = self.key_credentials(&app, &what).await?;
                        let mut new = new;
                        new["keyId"] = json!(id);
                        keys.push(new);
                        self.set_key_credentials(&app, keys, &what).await?;
                        id
                    }
                };
                if let Some(e) = self.entry_mut(request.account) {
                    e.keys.insert(id.clone(), (Some(thumbprint.to_string()), request.end));
                }
                Ok(Issued { id, secret: None })
            }
        }
    }

    /// `removePassword`, or `removeKey` with a proof token signed by `proof` (a current
    /// certificate of the application), or else a PATCH of `keyCredentials` without the key.
    /// A credential the read did not see, or that Graph no longer has, counts as removed.
    pub(super) async fn remove_key_or_password(
        &mut self,
        account: &str,
        credential_id: &str,
        proof: Option<&SigningCertificate>,
    ) -> Result<(), ApplyError> {
        let entry = self.entry(account)?;
        let app = entry.app_object_id.clone();
        let what = format!("remove credential {credential_id} of service account {account}");
        if entry.passwords.contains(credential_id) {
            let body = json!({"keyId": credential_id});
            match self
                .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/removePassword"), Some(body)))
                .await
            {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(write_error(&what, e)),
            }
            if let Some(e) = self.entry_mut(account) {
                e.passwords.remove(credential_id);
            }
            return Ok(());
        }
        if !entry.keys.contains_key(credential_id) {
            tracing::debug!(target_name = %self.target, account, credential_id, "credential already gone");
            return Ok(());
        }
        match proof.filter(|p| current_key(entry, p)) {
            Some(p) => {
                let token = self.proof(p, &app, &what)?;
                let body = json!({"keyId": credential_id, "proof": token.expose()});
                match self
                    .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/removeKey"), Some(body)))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(write_error(&what, e)),
                }
            }
            None => {
                let keys = self.key_credentials(&app, &what).await?;
                let before = keys.len();
                let keys: Vec<Value> = keys
                    .into_iter()
                    .filter(|k| k.get("keyId").and_then(Value::as_str) != Some(credential_id))
                    .collect();
                if keys.len() != before {
                    self.set_key_credentials(&app, keys, &what).await?;
                }
            }
        }
        if let Some(e) = self.entry_mut(account) {
            e.keys.remove(credential_id);
        }
        Ok(())
    }
}

/// Whether `cert` is one of the account's certificates that has not expired (a proof must be
/// signed by a current certificate, §2.5).
fn current_key(entry: &SaEntry, cert: &SigningCertificate) -> bool {
    let thumbprint = cert.thumbprint();
    let now = chrono::Utc::now();
    entry.keys.values().any(|(t, end)| t.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(&thumbprint)) && *end > now)
}
