//! Executing exactly a reviewed plan.
//!
//! Guarantees: changes run phase by phase in the plan's order (accounts, updates,
//! assignments, rotations, revocations, disables, deletions) and, within a phase, target by
//! target with directories before ERPs; a change whose prerequisite failed in this run (the
//! account or group it needs was not created, or the manager an update sets) is skipped, not
//! attempted, and a change that failed because its manager's creation failed is reported skipped,
//! naming the manager; before a batch is sent, an `attempting` record of each of its changes is
//! appended to the state's chain and made durable, and nothing is sent when that fails (the apply
//! stops with the error); every attempted or skipped change gets an outcome record before the
//! next phase starts; every failure is returned, not just the first. Apply never re-decides what to change: callers re-plan and
//! re-run, and providers make each operation idempotent so a re-run converges.
//!
//! Credentials: for `AddCredential`, apply generates the material (a certificate, or a secret
//! where the target does not make one), has the provider issue the credential, then delivers
//! the material to the credential's sink. Issue comes first, so nobody is left without a
//! credential; the issued credential is recorded as undelivered in the state (see
//! [`crate::state::documents::Undelivered`]) until its delivery succeeds, so a failed delivery, or a run
//! killed between issue and delivery, leaves it for the next plan to replace. A failure fails
//! the change with a message that names the credential and the sink, never the material. The
//! material is dropped when the change's handling ends.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::audit::{AuditError, Entry, Outcome};
use crate::credential::proof::SigningCertificate;
use crate::credential::sink::Sinks;
use crate::credential::{Material, generate};
use crate::model::{Binding, CredentialType, Deliver, KeyAlgorithm, Name, Timestamp, UndeliveredCredential};
use crate::plan::{Change, Operation, Plan, Principal};
use crate::provider::handle::{Session, Writing};
use crate::provider::{ApplyError, IssueMaterial, IssueRequest};
use crate::state::{AuditTrail, StateError, StateStore, documents};

/// The result of one change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeOutcome {
    pub address: String,
    pub action: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It failed because the live object changed since it was read: the plan no longer holds
    /// for it, and only a new plan can tell what to do.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

/// What a change that met a changed live object reports (before the provider's detail).
pub const CONFLICT: &str = "changed since the plan; plan again";

/// What a change that a re-run cannot make reports (before the provider's detail).
pub const WILL_NOT_CONVERGE: &str = "will not converge";

/// What an apply did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub outcomes: Vec<ChangeOutcome>,
}

impl ApplyReport {
    pub fn count(&self, o: Outcome) -> usize {
        self.outcomes.iter().filter(|c| c.outcome == o).count()
    }
    /// The changes that failed because their live object changed since the plan.
    pub fn conflicts(&self) -> usize {
        self.outcomes.iter().filter(|c| c.conflict).count()
    }

    /// The failed changes that a re-run cannot make (see [`ApplyError::lasting`]).
    pub fn lasting(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|c| {
                c.outcome == Outcome::Failed && c.error.as_deref().is_some_and(|e| e.starts_with(WILL_NOT_CONVERGE))
            })
            .count()
    }

    pub fn all_applied(&self) -> bool {
        self.outcomes.iter().all(|c| c.outcome == Outcome::Applied)
    }
}

/// Who and what an apply records in the audit log.
pub struct AuditContext {
    pub actor: String,
    pub commit: Option<String>,
    pub plan_hash: String,
    pub clock: fn() -> Timestamp,
    /// Where the applied plan came from (pull request, CI run), recorded with every outcome.
    pub provenance: Option<crate::audit::Provenance>,
    /// Who approved the changes, by change address (see [`crate::governance::approvals`]);
    /// recorded as `approvedBy` on their records.
    pub approvals: Approvals,
}

/// Approvals and notes to record with the changes they concern, by change address.
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    pub approved_by: BTreeMap<String, Vec<String>>,
    /// Why the change was made, where the plan does not say (a time-boxed grant's reason);
    /// recorded as the record's `detail` when the operation gives none of its own.
    pub detail: BTreeMap<String, String>,
}

/// What apply needs for credentials: the sinks, the state that records undelivered
/// credentials, and the time new credentials start (the plan's clock, so an injected clock
/// reaches them).
pub struct CredentialContext {
    pub sinks: Sinks,
    pub state: Arc<dyn StateStore>,
    pub now: Timestamp,
}

/// Called after each batch with (changes done, total).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("plan names target `{0}`, which was not opened")]
    MissingTarget(Name),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log in the state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The attempt of the next operations could not be recorded, so they were not sent.
    #[error(
        "not sent: {count} operation(s) on target `{target}` were not carried out because the audit log cannot \
         record them first: {source}"
    )]
    NotRecorded {
        target: Name,
        count: usize,
        #[source]
        source: Box<StateError>,
    },
}

/// The largest batch handed to a provider at once; bounds memory and how much an interrupted
/// run leaves unrecorded.
const BATCH: usize = 50_000;

/// Runs the plan's changes against the providers, recording each outcome; credentials are
/// issued and delivered as `creds` says.
pub async fn execute_with(
    plan: &Plan,
    providers: &mut BTreeMap<Name, Session<Writing>>,
    audit: &mut AuditTrail,
    ctx: &AuditContext,
    creds: &CredentialContext,
    progress: Progress<'_>,
) -> Result<ApplyReport, ExecuteError> {
    for c in &plan.changes {
        if !providers.contains_key(&c.address.target) {
            return Err(ExecuteError::MissingTarget(c.address.target.clone()));
        }
    }
    let mut report = ApplyReport::default();
    let total = plan.changes.len();
    // Natural keys whose creation failed in this run, per target.
    let mut failed_users: HashSet<(Name, String)> = HashSet::new();
    let mut failed_bindings: HashSet<(Name, Binding)> = HashSet::new();
    let mut failed_sas: HashSet<(Name, String)> = HashSet::new();

    // The plan is sorted by phase, then target; take runs of equal (phase, target).
    let mut i = 0;
    while i < plan.changes.len() {
        let first = &plan.changes[i];
        let key = (first.action.phase(), &first.address.target);
        let mut j = i;
        while j < plan.changes.len() && j - i < BATCH {
            let c = &plan.changes[j];
            if (c.action.phase(), &c.address.target) != key {
                break;
            }
            j += 1;
        }
        let target = first.address.target.clone();
        let run = &plan.changes[i..j];
        let mut entries = Vec::with_capacity(run.len());
        let mut to_apply: Vec<&Change> = Vec::with_capacity(run.len());
        let mut slots: Vec<Option<ChangeOutcome>> = Vec::with_capacity(run.len());
        for c in run {
            // An update that sets a manager whose creation failed waits for a re-run (a
            // creation goes ahead: a provider makes it without the reference, or fails it as
            // below).
            if matches!(c.operation, Operation::UpdateUser { .. })
                && let Some(m) = failed_manager(c, &target, &failed_users)
            {
                slots.push(Some(ChangeOutcome {
                    address: c.address.to_string(),
                    action: c.action.to_string(),
                    outcome: Outcome::Skipped,
                    error: Some(format!("skipped: its manager {m} could not be created")),
                    conflict: false,
                }));
                continue;
            }
            let blocked = match &c.operation {
                Operation::AddCredential { account, .. } => failed_sas.contains(&(target.clone(), account.clone())),
                Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                    failed_bindings.contains(&(target.clone(), binding.clone()))
                        || match principal {
                            Principal::User(u) => failed_users.contains(&(target.clone(), u.to_lowercase())),
                            Principal::ServiceAccount(n) => failed_sas.contains(&(target.clone(), n.clone())),
                        }
                }
                _ => false,
            };
            if blocked {
                slots.push(Some(ChangeOutcome {
                    address: c.address.to_string(),
                    action: c.action.to_string(),
                    outcome: Outcome::Skipped,
                    error: Some("skipped: the account or group it needs could not be created".into()),
                    conflict: false,
                }));
            } else {
                slots.push(None);
                to_apply.push(c);
            }
        }
        // What is about to be sent is on disk before anything is sent: if it cannot be recorded,
        // nothing is sent and the apply stops.
        let attempts: Vec<Entry> = to_apply
            .iter()
            .map(|c| entry_for(ctx, c, c.address.to_string(), c.action.to_string(), Outcome::Attempting, None, None))
            .collect();
        if !attempts.is_empty() {
            let count = attempts.len();
            audit.append_all(attempts).await.map_err(|source| ExecuteError::NotRecorded {
                target: target.clone(),
                count,
                source: Box::new(source),
            })?;
        }
        let provider = providers.get_mut(&target).expect("checked above");
        // Credentials go through their own calls; everything else in one batch.
        let (cred_changes, plain): (Vec<&Change>, Vec<&Change>) = to_apply.iter().partition(|c| is_credential(c));
        let mut cred_results = Vec::with_capacity(cred_changes.len());
        for c in &cred_changes {
            cred_results.push(credential_change(provider, c, creds).await);
        }
        let mut cred_results = cred_results.into_iter();
        let mut results = if plain.is_empty() { Vec::new() } else { provider.apply(&plain).await }.into_iter();
        let mut details: Vec<Option<String>> = Vec::with_capacity(run.len());
        for (slot, c) in slots.iter_mut().zip(run) {
            if slot.is_some() {
                details.push(None);
                continue;
            }
            let (result, detail) = if is_credential(c) {
                cred_results.next().unwrap_or_else(|| (Err(ApplyError::new("no outcome")), None))
            } else {
                (results.next().unwrap_or_else(|| Err(ApplyError::new("the provider gave no outcome"))), None)
            };
            details.push(detail);
            if result.is_err() {
                match &c.operation {
                    Operation::CreateUser { user_name, .. } => {
                        failed_users.insert((target.clone(), user_name.to_lowercase()));
                    }
                    Operation::CreateBinding { binding } => {
                        failed_bindings.insert((target.clone(), binding.clone()));
                    }
                    Operation::CreateServiceAccount { name, .. } => {
                        failed_sas.insert((target.clone(), name.clone()));
                    }
                    _ => {}
                }
            }
            *slot = Some(ChangeOutcome {
                address: c.address.to_string(),
                action: c.action.to_string(),
                outcome: if result.is_ok() { Outcome::Applied } else { Outcome::Failed },
                conflict: result.as_ref().is_err_and(|e| e.conflict),
                error: result.err().map(|e| match (e.conflict, e.lasting) {
                    (true, _) => format!("{CONFLICT}: {e}"),
                    (false, true) => format!("{WILL_NOT_CONVERGE}: {e}"),
                    (false, false) => e.to_string(),
                }),
            });
        }
        // A creation in the same batch as its manager's fails with it (a Bulk request's
        // reference to a failed creation): the prerequisite failed, not the change.
        for (slot, c) in slots.iter_mut().zip(run) {
            if let Some(o) = slot.as_mut().filter(|o| o.outcome == Outcome::Failed && !o.conflict)
                && let Some(m) = failed_manager(c, &target, &failed_users)
            {
                o.outcome = Outcome::Skipped;
                let said = o.error.take().unwrap_or_default();
                o.error = Some(format!("skipped: its manager {m} could not be created ({said})"));
            }
        }
        for ((slot, detail), c) in slots.into_iter().zip(details).zip(run) {
            let o = slot.expect("every slot filled");
            entries.push(entry_for(ctx, c, o.address.clone(), o.action.clone(), o.outcome, o.error.clone(), detail));
            report.outcomes.push(o);
        }
        audit.append_all(entries).await?;
        progress(report.outcomes.len(), total);
        i = j;
    }
    Ok(report)
}

/// The audit record of `c`: attempted, or with its outcome.
fn entry_for(
    ctx: &AuditContext,
    c: &Change,
    address: String,
    action: String,
    outcome: Outcome,
    error: Option<String>,
    detail: Option<String>,
) -> Entry {
    Entry {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        commit: ctx.commit.clone(),
        plan_hash: ctx.plan_hash.clone(),
        detail: detail.or_else(|| ctx.approvals.detail.get(&address).cloned()),
        approved_by: ctx.approvals.approved_by.get(&address).cloned().unwrap_or_default(),
        address,
        action,
        outcome,
        error,
        reason: Some(c.reason.kind.to_string()),
        provenance: ctx.provenance.clone().filter(|p| !p.is_empty()),
    }
}

/// The manager `c` sets, when that manager's creation failed in this run.
fn failed_manager<'c>(c: &'c Change, target: &Name, failed_users: &HashSet<(Name, String)>) -> Option<&'c str> {
    let manager = match &c.operation {
        Operation::CreateUser { attrs, .. } => attrs.manager.as_deref(),
        Operation::UpdateUser { set, .. } => set.manager.as_deref(),
        _ => None,
    }?;
    failed_users.contains(&(target.clone(), manager.to_lowercase())).then_some(manager)
}

fn is_credential(c: &Change) -> bool {
    matches!(c.operation, Operation::AddCredential { .. } | Operation::RemoveCredential { .. })
}

/// Reads the certificate a sink holds now, for a proof token; `None` when there is none or it
/// cannot be read (the provider then uses its fallback).
async fn proof_signer(sinks: &Sinks, from: Option<&Deliver>) -> Option<SigningCertificate> {
    let pem = sinks.current(from?).await.ok()??;
    SigningCertificate::from_pem(pem.expose()).ok()
}

/// Issues and delivers, or removes, one credential. Returns the outcome and, on success, the
/// audit detail.
async fn credential_change(
    provider: &mut Session<Writing>,
    change: &Change,
    creds: &CredentialContext,
) -> (Result<(), ApplyError>, Option<String>) {
    let target = change.address.target.to_string();
    match &change.operation {
        Operation::RemoveCredential { account, credential_id, proof_from } => {
            let proof = proof_signer(&creds.sinks, proof_from.as_ref()).await;
            let result = provider.remove_credential(account, credential_id, proof.as_ref()).await;
            if result.is_ok()
                && let Err(e) = documents::undelivered_forget(&*creds.state, &target, account, credential_id).await
            {
                tracing::warn!(error = %e, "cannot update the undelivered-credentials record");
            }
            (result, None)
        }
        Operation::AddCredential { account, credential, kind, lifetime_seconds, key_algorithm, deliver } => {
            let Some(deliver) = deliver else {
                let msg = format!(
                    "credential `{credential}` has no `deliver`; keyward does not issue a credential nobody receives"
                );
                return (Err(ApplyError::new(msg)), None);
            };
            let start = chrono::DateTime::from_timestamp(creds.now.timestamp(), 0).unwrap_or(creds.now);
            let end = start + chrono::TimeDelta::seconds(*lifetime_seconds);
            let name = format!("{credential}@{}", start.format("%Y-%m-%d"));
            let sink = deliver.label();
            // Recorded before the request: if its answer is lost (a reset, a timeout), the target
            // may hold a credential keyward never saw, and the next plan must treat one of this
            // name as undelivered rather than as the current credential.
            let unconfirmed = UndeliveredCredential {
                target: target.clone(),
                account: account.clone(),
                id: String::new(),
                name: name.clone(),
                issued: start,
            };
            if let Err(e) = documents::undelivered_add(&*creds.state, unconfirmed).await {
                return (Err(ApplyError::new(format!("not issued: cannot record the issue first: {e}"))), None);
            }
            let (issued, material) = match kind {
                CredentialType::Certificate => {
                    let alg = key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256);
                    let cert = match generate::certificate(alg, &format!("{account} {credential}"), start, end) {
                        Ok(c) => c,
                        Err(e) => return (Err(ApplyError::new(e.to_string())), None),
                    };
                    let proof = proof_signer(&creds.sinks, Some(deliver)).await;
                    let request = IssueRequest {
                        account,
                        name: &name,
                        start,
                        end,
                        material: IssueMaterial::Certificate {
                            der: &cert.der,
                            thumbprint: &cert.thumbprint,
                            proof: proof.as_ref(),
                        },
                    };
                    match provider.issue(&request).await {
                        Ok(i) => (i, Material::Certificate(cert.pem)),
                        Err(e) => return (Err(e), None),
                    }
                }
                CredentialType::Secret => {
                    let generated = match generate::secret() {
                        Ok(s) => s,
                        Err(e) => return (Err(ApplyError::new(e.to_string())), None),
                    };
                    let request = IssueRequest {
                        account,
                        name: &name,
                        start,
                        end,
                        material: IssueMaterial::Secret { generated: &generated },
                    };
                    match provider.issue(&request).await {
                        Ok(mut i) => {
                            let secret = i.secret.take().unwrap_or(generated);
                            (i, Material::Secret(secret))
                        }
                        Err(e) => return (Err(e), None),
                    }
                }
            };
            let detail = format!("issued `{name}` (id {}), valid until {}", issued.id, end.format("%Y-%m-%d"));
            // Recorded as undelivered before delivery and forgotten after it, so a run that
            // dies in between leaves the credential for the next plan to replace.
            let record = UndeliveredCredential {
                target: target.clone(),
                account: account.clone(),
                id: issued.id.clone(),
                name: name.clone(),
                issued: start,
            };
            let recorded = documents::undelivered_add(&*creds.state, record).await;
            if let Err(e) = documents::undelivered_forget_unconfirmed(&*creds.state, &target, account, &name).await {
                tracing::warn!(error = %e, "cannot update the undelivered-credentials record");
            }
            match creds.sinks.deliver(deliver, &material, start, end).await {
                Ok(()) => {
                    if recorded.is_ok()
                        && let Err(e) = documents::undelivered_forget(&*creds.state, &target, account, &issued.id).await
                    {
                        // The next plan replaces a credential that was delivered: wasteful, not unsafe.
                        tracing::warn!(error = %e, "cannot update the undelivered-credentials record");
                    }
                    (Ok(()), Some(format!("{detail}; delivered to {sink}")))
                }
                Err(e) => {
                    let recorded = match recorded {
                        Ok(()) => "it is recorded as not delivered and the next plan replaces it".to_string(),
                        Err(se) => format!("recording it as not delivered failed too ({se}); remove it on the target"),
                    };
                    let msg = format!("{detail}, but delivery failed: {e}; {recorded}");
                    (Err(ApplyError::new(msg)), Some(detail))
                }
            }
        }
        _ => (Err(ApplyError::new("not a credential operation")), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capabilities, LiveTarget, ProviderKind, UserAttrs, capabilities};
    use crate::plan::{Action, Address, ConfigRef, ObjectKind, Reason, ReasonKind};
    use crate::provider::handle::Opened;
    use crate::provider::{Provider, ProviderError};

    /// A target on which `bob`'s account changed since the plan was made.
    struct Moved {
        caps: Capabilities,
    }

    #[async_trait::async_trait]
    impl Provider for Moved {
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
            Ok(LiveTarget::default())
        }
        async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
            changes
                .iter()
                .map(|c| match c.address.name.as_str() {
                    "bob" => Err(ApplyError::conflict("account bob no longer exists")),
                    _ => Ok(()),
                })
                .collect()
        }
    }

    /// A target that refuses to create `mgr`, and, as a Bulk request does, fails a creation
    /// that refers to a creation failed in the same batch; records what reached it.
    struct NoManager {
        caps: Capabilities,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl Provider for NoManager {
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
            Ok(LiveTarget::default())
        }
        async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
            self.seen.lock().unwrap().extend(changes.iter().map(|c| c.address.name.clone()));
            changes
                .iter()
                .map(|c| match &c.operation {
                    Operation::CreateUser { user_name, .. } if user_name == "mgr" => {
                        Err(ApplyError::new("userName mgr is refused"))
                    }
                    Operation::CreateUser { attrs, .. } if attrs.manager.as_deref() == Some("mgr") => {
                        Err(ApplyError::new("bulkId:u1 refers to a failed operation"))
                    }
                    _ => Ok(()),
                })
                .collect()
        }
    }

    fn with_manager(target: &Name, name: &str, action: Action) -> Change {
        let attrs = UserAttrs { manager: Some("mgr".into()), ..Default::default() };
        let operation = match action {
            Action::Create => Operation::CreateUser { user_name: name.into(), attrs, active: true },
            _ => Operation::UpdateUser { user_name: name.into(), set: attrs },
        };
        Change::new(
            Address::new(target, ObjectKind::User, name),
            action,
            Reason::new(ReasonKind::Config, "manager differs from the configuration"),
            operation,
        )
    }

    #[tokio::test]
    async fn a_change_whose_manager_failed_to_be_created_is_skipped_naming_the_manager() {
        let dir = tempfile::tempdir().unwrap();
        let target = Name::new("t").unwrap();
        let create_mgr = Change::new(
            Address::new(&target, ObjectKind::User, "mgr"),
            Action::Create,
            Reason::new(ReasonKind::Config, "not on the target"),
            Operation::CreateUser { user_name: "mgr".into(), attrs: UserAttrs::default(), active: true },
        );
        // "ann" sorts before "mgr": her outcome is decided after the whole batch.
        let mut changes =
            vec![create_mgr, with_manager(&target, "ann", Action::Create), with_manager(&target, "bo", Action::Update)];
        crate::plan::sort_for_apply(&mut changes, &BTreeMap::new());
        let plan = crate::plan::assemble(
            changes,
            ConfigRef { digest: "d".into(), commit: None },
            vec![target.clone()],
            chrono::Utc::now(),
        );
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let fake = NoManager { caps: capabilities(ProviderKind::Scim), seen: seen.clone() };
        let (_, session) = Opened::from_provider(Box::new(fake)).read().await.unwrap();
        let report = run(&plan, target, session, dir.path()).await;
        let outcome = |a: &str| report.outcomes.iter().find(|o| o.address == a).unwrap();
        assert_eq!(outcome("t.user.mgr").outcome, Outcome::Failed);
        for a in ["t.user.ann", "t.user.bo"] {
            assert_eq!(outcome(a).outcome, Outcome::Skipped, "{a}");
            assert!(outcome(a).error.as_deref().unwrap().contains("its manager mgr could not be created"), "{a}");
        }
        assert!(outcome("t.user.ann").error.as_deref().unwrap().contains("bulkId:u1"), "the server's word is kept");
        assert_eq!(report.count(Outcome::Failed), 1);
        assert!(!seen.lock().unwrap().contains(&"bo".to_string()), "the update was not sent");
    }

    /// Applies `plan` to one target's session, with a local audit log and state in `dir`.
    async fn run(plan: &Plan, target: Name, session: Session<Writing>, dir: &std::path::Path) -> ApplyReport {
        let mut providers: BTreeMap<Name, Session<Writing>> = [(target, session)].into();
        let store: Arc<dyn StateStore> =
            Arc::new(crate::state::local::LocalStore::new(dir, std::path::Path::new("audit.jsonl")));
        let mut audit = AuditTrail::open(store.clone()).await.unwrap();
        let ctx = AuditContext {
            actor: "test".into(),
            commit: None,
            plan_hash: "h".into(),
            clock: chrono::Utc::now,
            provenance: None,
            approvals: Default::default(),
        };
        let creds = CredentialContext { sinks: Sinks::new(dir), state: store, now: chrono::Utc::now() };
        execute_with(plan, &mut providers, &mut audit, &ctx, &creds, &mut |_, _| {}).await.unwrap()
    }

    fn update(target: &Name, name: &str) -> Change {
        Change::new(
            Address::new(target, ObjectKind::User, name),
            Action::Update,
            Reason::new(ReasonKind::Config, "jobTitle differs from the configuration"),
            Operation::UpdateUser { user_name: format!("{name}@example.com"), set: UserAttrs::default() },
        )
        .fingerprint("f")
    }

    #[tokio::test]
    async fn a_change_whose_live_object_moved_is_a_conflict_reported_and_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let target = Name::new("t").unwrap();
        let plan = crate::plan::assemble(
            vec![update(&target, "alice"), update(&target, "bob")],
            ConfigRef { digest: "d".into(), commit: None },
            vec![target.clone()],
            chrono::Utc::now(),
        );
        let opened = Opened::from_provider(Box::new(Moved { caps: capabilities(ProviderKind::Scim) }));
        let (_, session) = opened.read().await.unwrap();
        let report = run(&plan, target, session, dir.path()).await;
        assert_eq!((report.count(Outcome::Applied), report.count(Outcome::Failed), report.conflicts()), (1, 1, 1));
        let bob = report.outcomes.iter().find(|o| o.address == "t.user.bob").unwrap();
        assert!(bob.conflict);
        assert_eq!(bob.error.as_deref(), Some("changed since the plan; plan again: account bob no longer exists"));
        assert!(!report.outcomes.iter().find(|o| o.address == "t.user.alice").unwrap().conflict);
    }
}
