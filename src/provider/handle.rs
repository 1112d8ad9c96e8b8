//! Typed handles on a target: reading comes first and returns the handle that acts on what
//! was read, and only a target opened for writing can write.
//!
//! [`open`] gives an [`Opened`] target in a [`Mode`]; [`Opened::read`] consumes it and returns
//! the live state with a [`Session`] in the same mode. `Session<Writing>` alone has `apply`,
//! `issue` and `remove_credential`, so "apply before read" and "apply on a target opened for
//! reading" do not compile. The engine reaches providers only through these handles.

use std::marker::PhantomData;
use std::path::Path;

use super::{Access, ApplyError, Attribution, FeedError, IssueRequest, Issued, Provider, ProviderError};
use crate::credential::proof::SigningCertificate;
use crate::model::feed::{Changes, Cursor};
use crate::model::{Capabilities, LiveBinding, LiveTarget, RoleEvent, Target};
use crate::plan::Change;
use crate::remote::RetryPolicy;

/// Why a target is opened. Sealed: the three below are all there are.
pub trait Mode: sealed::Sealed + Send + 'static {
    const ACCESS: Access;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Reading {}
    impl Sealed for super::Reviewing {}
    impl Sealed for super::Writing {}
}

/// For a plan or a drift check: read only.
pub enum Reading {}
/// For the access review: read only, with the per-account facts that cost extra requests.
pub enum Reviewing {}
/// For apply: locked where the target locks, and writable once read.
pub enum Writing {}

impl Mode for Reading {
    const ACCESS: Access = Access::Read;
}
impl Mode for Reviewing {
    const ACCESS: Access = Access::Review;
}
impl Mode for Writing {
    const ACCESS: Access = Access::Write;
}

/// A target opened and not yet read.
pub struct Opened<M: Mode> {
    provider: Box<dyn Provider>,
    mode: PhantomData<M>,
}

/// A target that was read, in mode `M`.
pub struct Session<M: Mode> {
    provider: Box<dyn Provider>,
    mode: PhantomData<M>,
}

/// Opens the provider for `target` in mode `M` (see [`super::open_with`]).
pub fn open<M: Mode>(target: &Target, root: &Path, retry: RetryPolicy) -> Result<Opened<M>, ProviderError> {
    Ok(Opened { provider: super::open_with(target, root, M::ACCESS, retry)?, mode: PhantomData })
}

impl Opened<Writing> {
    /// A provider keyward does not ship (a test's, a wrapper), taken as opened for writing:
    /// its `read` must have been given what `apply` needs, as the provider contract says.
    pub fn from_provider(provider: Box<dyn Provider>) -> Self {
        Opened { provider, mode: PhantomData }
    }
}

impl<M: Mode> Opened<M> {
    pub fn capabilities(&self) -> &Capabilities {
        self.provider.capabilities()
    }

    /// Reads the live state; the session acts on what was read.
    pub async fn read(mut self) -> Result<(LiveTarget, Session<M>), ProviderError> {
        let live = self.provider.read().await?;
        Ok((live, Session { provider: self.provider, mode: PhantomData }))
    }

    /// Reads the live state and, where the target has a change feed, a cursor into it (see
    /// [`Provider::read_with_cursor`]).
    pub async fn read_with_cursor(mut self) -> Result<(LiveTarget, Option<Cursor>, Session<M>), ProviderError> {
        let (live, cursor) = self.provider.read_with_cursor().await?;
        Ok((live, cursor, Session { provider: self.provider, mode: PhantomData }))
    }

    /// What changed since `cursor` (see [`Provider::read_changes`]). When the target refuses
    /// the cursor, the target comes back unread, to be read in full.
    pub async fn read_changes(
        mut self,
        cursor: &Cursor,
        last: &LiveTarget,
    ) -> Result<(Changes, Session<M>), (FeedError, Opened<M>)> {
        match self.provider.read_changes(cursor, last).await {
            Ok(changes) => Ok((changes, Session { provider: self.provider, mode: PhantomData })),
            Err(e) => Err((e, self)),
        }
    }

    /// See [`Provider::requests`].
    pub fn requests(&self) -> Option<usize> {
        self.provider.requests()
    }
}

impl<M: Mode> Session<M> {
    pub fn capabilities(&self) -> &Capabilities {
        self.provider.capabilities()
    }

    /// See [`Provider::attribute`].
    pub async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        self.provider.attribute(changes).await
    }

    /// See [`Provider::binding_fingerprint`].
    pub fn binding_fingerprint(&self, binding: &LiveBinding) -> String {
        self.provider.binding_fingerprint(binding)
    }

    /// See [`Provider::requests`].
    pub fn requests(&self) -> Option<usize> {
        self.provider.requests()
    }

    /// See [`Provider::role_contents`].
    pub async fn role_contents(
        &mut self,
        roles: &[String],
    ) -> Result<std::collections::BTreeMap<String, crate::model::RoleContents>, ProviderError> {
        self.provider.role_contents(roles).await
    }

    /// See [`Provider::role_history`].
    pub async fn role_history(&mut self) -> Result<Vec<RoleEvent>, ProviderError> {
        self.provider.role_history().await
    }
}

impl Session<Writing> {
    /// See [`Provider::unkept`].
    pub fn unkept(&self) -> std::collections::BTreeMap<crate::model::UserField, String> {
        self.provider.unkept()
    }

    /// See [`Provider::apply`].
    pub async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        self.provider.apply(changes).await
    }

    /// See [`Provider::issue`].
    pub async fn issue(&mut self, request: &IssueRequest<'_>) -> Result<Issued, ApplyError> {
        self.provider.issue(request).await
    }

    /// See [`Provider::remove_credential`].
    pub async fn remove_credential(
        &mut self,
        account: &str,
        credential_id: &str,
        proof: Option<&SigningCertificate>,
    ) -> Result<(), ApplyError> {
        self.provider.remove_credential(account, credential_id, proof).await
    }
}
