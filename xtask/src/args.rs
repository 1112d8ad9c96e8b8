//! Command-line options of the xtask commands (std only: a small hand-written parser).

use std::path::PathBuf;

/// Options of `cargo xtask test` and `cargo xtask peers`.
#[derive(Debug, Default, PartialEq)]
pub struct TestArgs {
    /// Install no peer at all.
    pub no_peers: bool,
    /// Peers not to install, by name.
    pub skip_peers: Vec<String>,
    /// Extra arguments for the test binaries (after `--`).
    pub test_args: Vec<String>,
}

impl TestArgs {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut out = TestArgs::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            match flag {
                "--" => {
                    out.test_args.extend(it.by_ref().cloned());
                }
                "--no-peers" => out.no_peers = true,
                "--skip-peer" => {
                    let name = value(flag, inline, &mut it)?;
                    if !crate::peers::ALL.iter().any(|p| p.name == name) {
                        let known: Vec<&str> = crate::peers::ALL.iter().map(|p| p.name).collect();
                        return Err(format!("unknown peer `{name}` (known: {})", known.join(", ")));
                    }
                    out.skip_peers.push(name);
                }
                _ => return Err(format!("unknown option `{arg}` (see `cargo xtask help`)")),
            }
        }
        Ok(out)
    }
}

/// Options of `cargo xtask gen-fixture`.
#[derive(Debug, PartialEq)]
pub struct FixtureArgs {
    pub users: usize,
    pub out: PathBuf,
    pub seed: u64,
    pub roles: Option<usize>,
    pub sod_rules: usize,
    pub service_accounts: Option<usize>,
}

pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_SOD_RULES: usize = 50;

impl FixtureArgs {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut users = None;
        let mut out = None;
        let mut seed = DEFAULT_SEED;
        let mut roles = None;
        let mut sod_rules = DEFAULT_SOD_RULES;
        let mut service_accounts = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            match flag {
                "--users" => users = Some(number(flag, &value(flag, inline, &mut it)?)?),
                "--out" => out = Some(PathBuf::from(value(flag, inline, &mut it)?)),
                "--seed" => seed = number(flag, &value(flag, inline, &mut it)?)?,
                "--roles" => roles = Some(number(flag, &value(flag, inline, &mut it)?)?),
                "--sod-rules" => sod_rules = number(flag, &value(flag, inline, &mut it)?)?,
                "--service-accounts" => service_accounts = Some(number(flag, &value(flag, inline, &mut it)?)?),
                _ => return Err(format!("unknown option `{arg}` (see `cargo xtask help`)")),
            }
        }
        let users = users.ok_or("gen-fixture needs --users N")?;
        let out = out.ok_or("gen-fixture needs --out DIR")?;
        if roles == Some(0) && users > 0 {
            return Err("--roles must be at least 1 when there are users".into());
        }
        Ok(FixtureArgs { users, out, seed, roles, sod_rules, service_accounts })
    }
}

/// Splits `--flag=value` into the flag and its inline value.
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((flag, v)) if flag.starts_with("--") => (flag, Some(v)),
        _ => (arg, None),
    }
}

fn value<'a>(flag: &str, inline: Option<&str>, it: &mut impl Iterator<Item = &'a String>) -> Result<String, String> {
    match inline {
        Some(v) => Ok(v.to_string()),
        None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value")),
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    cleaned.parse().map_err(|_| format!("{flag} takes a non-negative whole number, not `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fixture_args_with_defaults_and_inline_values() {
        let a = FixtureArgs::parse(&strings(&["--users", "100_000", "--out=/tmp/x"])).unwrap();
        assert_eq!(a.users, 100_000);
        assert_eq!(a.out, PathBuf::from("/tmp/x"));
        assert_eq!(a.seed, DEFAULT_SEED);
        assert_eq!(a.roles, None);
        assert_eq!(a.sod_rules, DEFAULT_SOD_RULES);
        let a = FixtureArgs::parse(&strings(&[
            "--users=10",
            "--out",
            "d",
            "--seed",
            "7",
            "--roles",
            "3",
            "--sod-rules",
            "0",
            "--service-accounts",
            "2",
        ]))
        .unwrap();
        assert_eq!((a.seed, a.roles, a.sod_rules, a.service_accounts), (7, Some(3), 0, Some(2)));
    }

    #[test]
    fn fixture_args_errors() {
        assert!(FixtureArgs::parse(&strings(&["--out", "d"])).is_err());
        assert!(FixtureArgs::parse(&strings(&["--users", "5"])).is_err());
        assert!(FixtureArgs::parse(&strings(&["--users", "-5", "--out", "d"])).is_err());
        assert!(FixtureArgs::parse(&strings(&["--users", "5", "--out", "d", "--x"])).is_err());
        assert!(FixtureArgs::parse(&strings(&["--users"])).is_err());
    }

    #[test]
    fn test_args() {
        let a = TestArgs::parse(&strings(&["--skip-peer", "slapd", "--", "ldap", "--nocapture"])).unwrap();
        assert_eq!(a.skip_peers, vec!["slapd".to_string()]);
        assert_eq!(a.test_args, strings(&["ldap", "--nocapture"]));
        assert!(!a.no_peers);
        assert!(TestArgs::parse(&strings(&["--no-peers"])).unwrap().no_peers);
        assert!(TestArgs::parse(&strings(&["--skip-peer", "postgres"])).is_err());
        assert!(TestArgs::parse(&strings(&["--bogus"])).is_err());
    }
}
