//! The built-in rules: stable ids, default severities and what each checks, for documentation
//! and for the rule list of SARIF output.

use crate::model::Severity;

/// A built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    pub rule: Rule,
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
    ($($rule:ident = $id:literal, $sev:ident, $summary:literal, $help:literal;)+) => {
        /// A built-in rule. Code names rules by this enum, never by their id's text, so a rule
        /// the catalogue does not know cannot be written (it does not compile).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $($rule,)+
        }

        /// Every built-in rule, in documentation order.
        pub const RULES: &[RuleInfo] = &[
            $(RuleInfo { rule: Rule::$rule, id: $id, severity: Severity::$sev, summary: $summary, help: $help },)+
        ];
    };
}

rules! {
    SodConflict = "sod.conflict", Deny,
    "Someone holds roles or duties from both sides of a SodRule (severity: the rule's own).",
    "Remove one of the roles, or add an exception with a reason and an expiry date to the rule.";
    SodExceptionExpired = "sod.exception-expired", Warn,
    "A SodRule exception is past its expiry date.",
    "Remove the exception, or renew it with a new reason and date after review.";
    SodLiveConflict = "sod.live-conflict", Deny,
    "A live account holds both sides of a SodRule and git does not explain it (severity: the rule's own, warn when the plan resolves it).",
    "Apply the plan to remove the access granted outside git, or record the access in git.";
    SodTargetConflict = "sod.target-conflict", Warn,
    "A target reports a segregation-of-duties conflict under its own rules (info when the target records it as resolved).",
    "Remove one of the two roles, or resolve the conflict on the target with a reason.";
    HygienePrivilegedWithoutExpiry = "hygiene.privileged-without-expiry", Deny,
    "A privileged role is assigned without `expires`.",
    "Write the assignment as {role, expires, reason, ticket}.";
    HygienePrivilegedExpiryTooLong = "hygiene.privileged-expiry-too-long", Deny,
    "A privileged role is assigned for longer than policy.maxPrivilegedAssignment.",
    "Bring `expires` within the maximum; renew the assignment when it ends.";
    HygieneExpiredAssignment = "hygiene.expired-assignment", Info,
    "A role assignment is past its `expires` date; keyward revokes it.",
    "Remove the expired assignment from the configuration.";
    HygieneManagerChain = "hygiene.manager-chain", Warn,
    "A user who needs one (policy.requireManager) has no unbroken chain of active managers.",
    "Set `manager` to an active user, or list the user in policy.topOfChain.";
    HygieneServiceAccountOwner = "hygiene.service-account-owner", Warn,
    "A service account's owner is disabled, or a live service account has no owner.",
    "Give the service account an active owner.";
    HygieneUnmanagedPrivilegedMember = "hygiene.unmanaged-privileged-member", Warn,
    "A member of an object bound to a privileged role is an account keyward does not manage (outside ownership.scope), or one whose userName looks like a managed one (another case, or look-alike characters).",
    "Remove the account from the group on the target, or bring it into git and inside ownership.scope.";
    HygieneDisabledUserWithRoles = "hygiene.disabled-user-with-roles", Warn,
    "A disabled user still holds roles.",
    "Remove the roles of users who left.";
    AuthPrivilegedWithoutMfa = "auth.privileged-without-mfa", Deny,
    "Holders of a privileged role are not covered by an AuthenticationPolicy with `mfa: required`.",
    "Add an AuthenticationPolicy with appliesTo: {privileged: true} and mfa: required.";
    AuthPhishingResistantNotEnforced = "auth.phishing-resistant-not-enforced", Deny,
    "A role requires phishing-resistant authentication, but no policy covering its holders limits them to phishing-resistant methods.",
    "Limit methods.allowed of a policy covering the role to fido2, windowsHelloForBusiness and x509Certificate.";
    AuthForbiddenMethodEnabled = "auth.forbidden-method-enabled", Deny,
    "A sign-in method that an AuthenticationPolicy forbids is enabled on a target (warn when the plan turns it off).",
    "Apply the plan, or turn the method off on the target.";
    AuthMfaNotRegistered = "auth.mfa-not-registered", Warn,
    "A person covered by an AuthenticationPolicy with `mfa: required` has registered no second sign-in method it accepts (where the target reports registered methods).",
    "Ask the person to register an accepted method.";
    AuthStaleAccount = "auth.stale-account", Warn,
    "An active account has not signed in for longer than its policy's `staleAfter`.",
    "Disable the account, or remove the user from the configuration.";
    CredentialLifetimeExceedsPolicy = "credential.lifetime-exceeds-policy", Deny,
    "A credential's lifetime is longer than policy allows (warn for a live credential made outside keyward).",
    "Shorten `lifetime` to policy.maxSecretLifetime or less.";
    CredentialRotationWindow = "credential.rotation-window", Info,
    "A live credential is inside its rotation window (warn when the plan does not rotate it).",
    "Apply the plan so keyward rotates the credential.";
    CredentialExpired = "credential.expired", Warn,
    "A live credential is past its end date.",
    "Apply the plan so keyward issues a new credential, and remove the expired one.";
    DataReaderWithoutClearance = "data.reader-without-clearance", Deny,
    "A role that can read a DataClassification lacks the clearance its level needs.",
    "Raise the role's requires.clearance, or stop it reading the data.";
    DataLivePrivilege = "data.live-privilege", Deny,
    "At plan time: a role's live contents hold a privilege that a DataClassification lists in `assets.TARGET.privileges`, and the role may not read that classification.",
    "Remove the privilege from the security role on the target, or let the role read the classification.";
    ContentsPinnedDrift = "contents.pinned-drift", Deny,
    "At plan time: the live contents of a Role with `contents: pinned` differ from its snapshot in role-contents/ (a privilege added or removed, a depth changed, a duty added or removed).",
    "Undo the change on the target, or accept it with `keyward import --target NAME --contents` and commit the snapshot.";
    EncryptionWeakKey = "encryption.weak-key", Deny,
    "A credential's key algorithm is below EncryptionPolicy.keys.",
    "Choose a key algorithm that the EncryptionPolicy allows.";
    EncryptionCertificateLifetime = "encryption.certificate-lifetime", Deny,
    "A certificate's lifetime is longer than EncryptionPolicy.certificates.maxLifetime (warn for a live certificate).",
    "Shorten the certificate's `lifetime`.";
    EncryptionInsecureUrl = "encryption.insecure-url", Deny,
    "A target URL is not https (or ldaps) outside loopback.",
    "Use https:// (ldaps://, or ldap:// with startTls: true).";
    EncryptionPlaintextSecret = "encryption.plaintext-secret", Deny,
    "A file of the configuration holds a plain-text secret (warn unless an EncryptionPolicy sets secrets.forbidInRepo).",
    "Remove the secret, rotate it (it is in the history), and reference it as ${env:NAME} or ${file:PATH}.";
    PolicySettings = "policy.settings", Deny,
    "The `policy` section of keyward.yaml names a rule or user that does not exist.",
    "Correct the name.";
    RegoError = "rego.error", Deny,
    "A Rego policy file does not parse or fails to evaluate.",
    "Fix the policy; see docs/policies.md.";
}

/// The built-in rule with this id (for ids that come from outside: keyward.yaml, findings).
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

impl Rule {
    /// Its entry in the catalogue.
    pub fn info(self) -> &'static RuleInfo {
        // RULES lists the rules in the enum's order.
        &RULES[self as usize]
    }

    /// Its stable id, `family.name`.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The severity of its findings unless keyward.yaml or the rule itself says otherwise.
    pub fn severity(self) -> Severity {
        self.info().severity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enum_and_the_catalogue_agree() {
        let mut ids = std::collections::BTreeSet::new();
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.rule as usize, i, "{} is out of order", r.id);
            assert_eq!(r.rule.id(), r.id);
            assert!(ids.insert(r.id), "{} is listed twice", r.id);
            let (family, name) = r.id.split_once('.').unwrap_or_else(|| panic!("{} is not family.name", r.id));
            let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            assert!(word(family) && word(name), "{} is not family.name in lower case", r.id);
        }
    }

    /// Every rule id written anywhere in the code or the documentation is one the catalogue
    /// has: the built-in rules name theirs through [`Rule`], so this finds the texts that
    /// still spell one out (a test's expectation, a renderer, the rule list in the docs).
    #[test]
    fn every_rule_id_in_the_code_and_the_docs_is_in_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let families: std::collections::BTreeSet<&str> =
            RULES.iter().map(|r| r.id.split_once('.').expect("checked above").0).collect();
        let mut files = vec![root.join("docs/policies.md")];
        let mut dirs = vec![root.join("src"), root.join("tests")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut unknown = Vec::new();
        let mut seen = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            // Quoted or back-quoted `family.name` words of the built-in families.
            for quote in ['"', '`'] {
                for piece in text.split(quote).skip(1).step_by(2) {
                    let Some((family, name)) = piece.split_once('.') else { continue };
                    let is_id = families.contains(family)
                        && !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
                    // File names (`sod.yaml`) and keyward.yaml's `policy.rules` are not ids.
                    let other = matches!(name, "yaml" | "yml" | "json" | "rego" | "md" | "rules" | "main");
                    if !is_id || other || family == "rego" {
                        continue;
                    }
                    seen += 1;
                    if rule_info(piece).is_none() {
                        unknown.push(format!("{}: {piece}", f.strip_prefix(root).unwrap().display()));
                    }
                }
            }
        }
        assert!(seen > 50, "found only {seen} rule ids: are the files read?");
        assert!(unknown.is_empty(), "rule ids the catalogue does not know:\n{}", unknown.join("\n"));
        // And every rule is documented.
        let docs = std::fs::read_to_string(root.join("docs/policies.md")).unwrap();
        let undocumented: Vec<&str> = RULES.iter().map(|r| r.id).filter(|id| !docs.contains(id)).collect();
        assert!(undocumented.is_empty(), "rules missing from docs/policies.md: {undocumented:?}");
    }
}
