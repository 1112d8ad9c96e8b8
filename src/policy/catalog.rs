//! The built-in rules: stable ids, default severities and what each checks, for documentation
//! and for the rule list of SARIF output.

use crate::model::Severity;

/// A built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// The stable id, `family.name`.
    pub id: &'static str,
    /// The severity of its findings, unless noted in `summary` or set in keyward.yaml.
    pub severity: Severity,
    /// One sentence: what the rule reports.
    pub summary: &'static str,
    /// How to fix a finding, in general.
    pub help: &'static str,
}

macro_rules! rules {
    ($($id:literal, $sev:ident, $summary:literal, $help:literal;)+) => {
        /// Every built-in rule, in documentation order.
        pub const RULES: &[RuleInfo] = &[
            $(RuleInfo { id: $id, severity: Severity::$sev, summary: $summary, help: $help },)+
        ];
    };
}

rules! {
    "sod.conflict", Deny,
    "Someone holds roles or duties from both sides of a SodRule (severity: the rule's own).",
    "Remove one of the roles, or add an exception with a reason and an expiry date to the rule.";
    "sod.exception-expired", Warn,
    "A SodRule exception is past its expiry date.",
    "Remove the exception, or renew it with a new reason and date after review.";
    "sod.live-conflict", Deny,
    "A live account holds both sides of a SodRule and git does not explain it (severity: the rule's own, warn when the plan resolves it).",
    "Apply the plan to remove the access granted outside git, or record the access in git.";
    "sod.target-conflict", Warn,
    "A target reports a segregation-of-duties conflict under its own rules (info when the target records it as resolved).",
    "Remove one of the two roles, or resolve the conflict on the target with a reason.";
    "hygiene.privileged-without-expiry", Deny,
    "A privileged role is assigned without `expires`.",
    "Write the assignment as {role, expires, reason, ticket}.";
    "hygiene.privileged-expiry-too-long", Deny,
    "A privileged role is assigned for longer than policy.maxPrivilegedAssignment.",
    "Bring `expires` within the maximum; renew the assignment when it ends.";
    "hygiene.expired-assignment", Info,
    "A role assignment is past its `expires` date; keyward revokes it.",
    "Remove the expired assignment from the configuration.";
    "hygiene.manager-chain", Warn,
    "A user who needs one (policy.requireManager) has no unbroken chain of active managers.",
    "Set `manager` to an active user, or list the user in policy.topOfChain.";
    "hygiene.service-account-owner", Warn,
    "A service account's owner is disabled, or a live service account has no owner.",
    "Give the service account an active owner.";
    "hygiene.disabled-user-with-roles", Warn,
    "A disabled user still holds roles.",
    "Remove the roles of users who left.";
    "auth.privileged-without-mfa", Deny,
    "Holders of a privileged role are not covered by an AuthenticationPolicy with `mfa: required`.",
    "Add an AuthenticationPolicy with appliesTo: {privileged: true} and mfa: required.";
    "auth.phishing-resistant-not-enforced", Deny,
    "A role requires phishing-resistant authentication, but no policy covering its holders limits them to phishing-resistant methods.",
    "Limit methods.allowed of a policy covering the role to fido2, windowsHelloForBusiness and x509Certificate.";
    "auth.forbidden-method-enabled", Deny,
    "A sign-in method that an AuthenticationPolicy forbids is enabled on a target (warn when the plan turns it off).",
    "Apply the plan, or turn the method off on the target.";
    "auth.mfa-not-registered", Warn,
    "A person covered by an AuthenticationPolicy with `mfa: required` has registered no second sign-in method it accepts (where the target reports registered methods).",
    "Ask the person to register an accepted method.";
    "auth.stale-account", Warn,
    "An active account has not signed in for longer than its policy's `staleAfter`.",
    "Disable the account, or remove the user from the configuration.";
    "credential.lifetime-exceeds-policy", Deny,
    "A credential's lifetime is longer than policy allows (warn for a live credential made outside keyward).",
    "Shorten `lifetime` to policy.maxSecretLifetime or less.";
    "credential.rotation-window", Info,
    "A live credential is inside its rotation window (warn when the plan does not rotate it).",
    "Apply the plan so keyward rotates the credential.";
    "credential.expired", Warn,
    "A live credential is past its end date.",
    "Apply the plan so keyward issues a new credential, and remove the expired one.";
    "data.reader-without-clearance", Deny,
    "A role that can read a DataClassification lacks the clearance its level needs.",
    "Raise the role's requires.clearance, or stop it reading the data.";
    "encryption.weak-key", Deny,
    "A credential's key algorithm is below EncryptionPolicy.keys.",
    "Choose a key algorithm that the EncryptionPolicy allows.";
    "encryption.certificate-lifetime", Deny,
    "A certificate's lifetime is longer than EncryptionPolicy.certificates.maxLifetime (warn for a live certificate).",
    "Shorten the certificate's `lifetime`.";
    "encryption.insecure-url", Deny,
    "A target URL is not https (or ldaps) outside loopback.",
    "Use https:// (ldaps://, or ldap:// with startTls: true).";
    "encryption.plaintext-secret", Deny,
    "A file of the configuration holds a plain-text secret (warn unless an EncryptionPolicy sets secrets.forbidInRepo).",
    "Remove the secret, rotate it (it is in the history), and reference it as ${env:NAME} or ${file:PATH}.";
    "policy.settings", Deny,
    "The `policy` section of keyward.yaml names a rule or user that does not exist.",
    "Correct the name.";
    "rego.error", Deny,
    "A Rego policy file does not parse or fails to evaluate.",
    "Fix the policy; see docs/policies.md.";
}

/// The built-in rule with this id.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}
