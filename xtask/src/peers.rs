//! Test peers: real servers that the integration tests run against.
//!
//! Progress goes to stderr, so that `cargo xtask peers` prints only `export` lines on stdout.
//!
//! xtask installs each peer and tells the tests where its binary is, through an environment
//! variable. Each SCIM test starts its own scim2-server on a free loopback port and stops it
//! when done; slapd is started once for the whole run by `cargo xtask test` (see
//! [`crate::slapd`]) and each LDAP test works in its own OU, so tests stay independent and can
//! run in parallel.
//!
//! | peer           | from                                        | variable                     |
//! |----------------|---------------------------------------------|------------------------------|
//! | `scim2-server` | PyPI, pinned, in a virtualenv               | `KEYWARD_SCIM2_SERVER`       |
//! | `slapd`        | Debian's `slapd` + `ldap-utils`             | `KEYWARD_SLAPD`              |
//! | `django-scim2` | PyPI, pinned, in a virtualenv (its Python)  | `KEYWARD_DJANGO_SCIM_PYTHON` |
//! | `samba`        | Debian's Samba AD DC packages               | `KEYWARD_SAMBA`              |
//! | `azurite`      | npm, pinned by a committed lock file        | `KEYWARD_AZURITE_BLOB`       |
//! | `chromium`     | Debian's `chromium` (headless)              | `KEYWARD_CHROMIUM`           |
//! | `chromedriver` | Debian's `chromium-driver`                  | `KEYWARD_CHROMEDRIVER`       |
//!
//! Each django-scim2 test starts its own server too (the Django project under
//! `xtask/peers/django_scim/`), as does each Azurite test (see [`crate::azurite`]); Samba's AD
//! domain controller, like slapd, is started once per run (see [`crate::samba`]).
//!
//! `KEYWARD_PEERS=1` is set only when every peer is ready: tests may then treat a missing peer
//! as a failure rather than a reason to skip. A variable that is already set in the environment
//! is taken as it is (a local build of a peer, say) and that peer is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// The pinned version of the SCIM 2.0 server from PyPI.
pub const SCIM2_SERVER_VERSION: &str = "0.8.3";

/// Set when every peer is ready.
pub const PEERS_READY_VAR: &str = "KEYWARD_PEERS";

/// Where Debian's package puts the OpenLDAP server.
pub const SLAPD_PATH: &str = "/usr/sbin/slapd";

/// A peer that the tests need.
pub struct Peer {
    pub name: &'static str,
    /// The environment variable that carries the path of the peer's binary to the tests.
    pub env_var: &'static str,
    /// Installs the peer if needed (idempotent) and returns the path of its binary.
    pub install: fn(&Context) -> Result<PathBuf, String>,
}

pub const SCIM2_SERVER: Peer =
    Peer { name: "scim2-server", env_var: "KEYWARD_SCIM2_SERVER", install: install_scim2_server };

pub const SLAPD: Peer = Peer { name: "slapd", env_var: "KEYWARD_SLAPD", install: install_slapd };

pub const DJANGO_SCIM: Peer =
    Peer { name: "django-scim2", env_var: "KEYWARD_DJANGO_SCIM_PYTHON", install: install_django_scim };

pub const SAMBA: Peer = Peer { name: "samba", env_var: "KEYWARD_SAMBA", install: install_samba };

pub const AZURITE: Peer =
    Peer { name: "azurite", env_var: "KEYWARD_AZURITE_BLOB", install: crate::azurite::install_azurite };

/// Headless Chromium, in which the report tests open the HTML report from a file.
pub const CHROMIUM: Peer = Peer { name: "chromium", env_var: "KEYWARD_CHROMIUM", install: install_chromium };

/// ChromeDriver, through whose WebDriver API the report tests drive Chromium.
pub const CHROMEDRIVER: Peer =
    Peer { name: "chromedriver", env_var: "KEYWARD_CHROMEDRIVER", install: install_chromedriver };

/// Every peer, in installation order.
pub const ALL: &[Peer] = &[SCIM2_SERVER, SLAPD, DJANGO_SCIM, SAMBA, AZURITE, CHROMIUM, CHROMEDRIVER];

/// What the installers need to know.
pub struct Context {
    /// Cargo's target directory; peers that are not system packages live under `peers/` in it.
    pub target_dir: PathBuf,
}

/// The outcome of [`prepare`].
pub struct Prepared {
    /// Variables to set for the tests.
    pub env: Vec<(String, String)>,
    /// Whether every peer is ready (nothing skipped, nothing failed).
    pub all_ready: bool,
}

/// Installs the peers that are not skipped. With `strict`, a failed install is an error;
/// otherwise it is a warning and the peer's variable is left unset.
pub fn prepare(ctx: &Context, skip: &[String], strict: bool) -> Result<Prepared, String> {
    let mut env = Vec::new();
    let mut all_ready = true;
    for peer in ALL {
        if skip.iter().any(|s| s == peer.name) {
            eprintln!("    {}: skipped", peer.name);
            all_ready = false;
            continue;
        }
        if let Some(existing) = std::env::var_os(peer.env_var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(existing);
            if path.is_file() {
                eprintln!("    {}: using {} from the environment ({})", peer.name, peer.env_var, path.display());
                env.push((peer.env_var.to_string(), path.display().to_string()));
                continue;
            }
            let message = format!("{}: {} is set to {}, which is not a file", peer.name, peer.env_var, path.display());
            if strict {
                return Err(message);
            }
            eprintln!("    warning: {message}");
            all_ready = false;
            continue;
        }
        match (peer.install)(ctx) {
            Ok(path) => {
                eprintln!("    {}: ready at {}", peer.name, path.display());
                env.push((peer.env_var.to_string(), path.display().to_string()));
            }
            Err(e) if strict => {
                return Err(format!("could not install test peer {}: {e}", peer.name));
            }
            Err(e) => {
                eprintln!(
                    "    warning: could not install test peer {}: {e}\n    \
                     warning: {} is left unset for the tests",
                    peer.name, peer.env_var
                );
                all_ready = false;
            }
        }
    }
    if all_ready {
        env.push((PEERS_READY_VAR.to_string(), "1".to_string()));
    }
    Ok(Prepared { env, all_ready })
}

// ---------------------------------------------------------------------------------------------
// scim2-server: a virtualenv under the target directory, with a stamp of what it holds.

fn scim_venv(ctx: &Context) -> PathBuf {
    ctx.target_dir.join("peers").join("scim-venv")
}

fn venv_bin(venv: &Path, program: &str) -> PathBuf {
    if cfg!(windows) { venv.join("Scripts").join(format!("{program}.exe")) } else { venv.join("bin").join(program) }
}

fn scim_stamp_contents() -> String {
    format!("scim2-server=={SCIM2_SERVER_VERSION}\n")
}

/// Installs the pinned `scim2-server` into `target/peers/scim-venv` unless the stamp file says
/// it is already there.
pub fn install_scim2_server(ctx: &Context) -> Result<PathBuf, String> {
    let venv = scim_venv(ctx);
    let exe = venv_bin(&venv, "scim2-server");
    let stamp = venv.join(".keyward-peer-stamp");
    if exe.is_file() && std::fs::read_to_string(&stamp).ok() == Some(scim_stamp_contents()) {
        eprintln!("    scim2-server {SCIM2_SERVER_VERSION}: already installed");
        return Ok(exe);
    }
    eprintln!("    scim2-server {SCIM2_SERVER_VERSION}: installing into {}", venv.display());
    make_venv(&venv)?;

    let venv_python = venv_bin(&venv, "python");
    run_quiet(
        Command::new(&venv_python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                "--quiet",
            ])
            .arg(format!("scim2-server=={SCIM2_SERVER_VERSION}")),
    )
    .map_err(|e| format!("pip install scim2-server=={SCIM2_SERVER_VERSION} failed: {e}"))?;

    if !exe.is_file() {
        return Err(format!("pip installed no {}", exe.display()));
    }
    run_quiet(Command::new(&exe).arg("--help")).map_err(|e| format!("`{} --help` failed: {e}", exe.display()))?;
    std::fs::write(&stamp, scim_stamp_contents()).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(exe)
}

// ---------------------------------------------------------------------------------------------
// slapd: Debian's packages.

/// Installs OpenLDAP's `slapd` and the `ldap-utils` clients with apt-get unless they are there.
pub fn install_slapd(_ctx: &Context) -> Result<PathBuf, String> {
    let slapd = PathBuf::from(SLAPD_PATH);
    if slapd.is_file() && Path::new("/usr/bin/ldapadd").is_file() {
        eprintln!("    slapd: already installed");
        return Ok(slapd);
    }
    if !Path::new("/usr/bin/apt-get").is_file() {
        return Err(format!(
            "{SLAPD_PATH} is missing and there is no apt-get to install it; install OpenLDAP's \
             slapd and set KEYWARD_SLAPD to its path"
        ));
    }
    eprintln!("    slapd: installing Debian's slapd and ldap-utils");
    apt_install(&["slapd", "ldap-utils"])?;
    if !slapd.is_file() {
        return Err(format!("apt-get installed slapd but {SLAPD_PATH} is missing"));
    }
    relax_apparmor_for_slapd();
    Ok(slapd)
}

/// Ubuntu confines /usr/sbin/slapd with an AppArmor profile that only allows the system's own
/// data folders; tests run it with a configuration in a temporary folder. Unloading the profile
/// is best effort: where AppArmor is off (containers, Debian without it) there is nothing to do.
fn relax_apparmor_for_slapd() {
    let profile = Path::new("/etc/apparmor.d/usr.sbin.slapd");
    let parser = Path::new("/sbin/apparmor_parser");
    if !Path::new("/sys/kernel/security/apparmor").exists() || !profile.is_file() || !parser.is_file() {
        return;
    }
    let mut cmd = privileged("/sbin/apparmor_parser");
    cmd.arg("-R").arg(profile);
    match run_quiet(&mut cmd) {
        Ok(()) => eprintln!("    slapd: unloaded its AppArmor profile so tests can run it"),
        Err(e) => eprintln!("    note: could not unload slapd's AppArmor profile: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// django-scim2: a Django project in this repository, its pinned packages in a virtualenv.

/// The Django project that serves django-scim2 (see its README).
pub fn django_scim_project() -> PathBuf {
    crate::workspace_root().join("xtask").join("peers").join("django_scim")
}

fn django_scim_venv(ctx: &Context) -> PathBuf {
    ctx.target_dir.join("peers").join("django-scim-venv")
}

/// Installs the project's `requirements.txt` (every package pinned) into
/// `target/peers/django-scim-venv` unless the stamp says it holds exactly those, and returns the
/// virtualenv's Python, which runs the project's `serve.py`.
pub fn install_django_scim(ctx: &Context) -> Result<PathBuf, String> {
    let requirements = django_scim_project().join("requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let venv = django_scim_venv(ctx);
    let python = venv_bin(&venv, "python");
    let stamp = venv.join(".keyward-peer-stamp");
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        eprintln!("    django-scim2: already installed");
        return Ok(python);
    }
    eprintln!("    django-scim2: installing {} into {}", requirements.display(), venv.display());
    make_venv(&venv)?;
    run_quiet(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"])
            .args(["--quiet", "--no-deps", "-r"])
            .arg(&requirements),
    )
    .map_err(|e| format!("pip install -r {} failed: {e}", requirements.display()))?;
    // The project must import with what was installed (a missing pin shows here, not in a test).
    run_quiet(Command::new(&python).args(["-c", "import django, django_scim, waitress, scim2_filter_parser"]))
        .map_err(|e| format!("the django-scim2 virtualenv is incomplete: {e}"))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// `python3 -m venv --clear DIR`, installing Debian's python3-venv first when the system
/// Python lacks it (Debian and Ubuntu ship `venv` for their own python3 in a separate package).
fn make_venv(venv: &Path) -> Result<(), String> {
    std::fs::create_dir_all(venv.parent().expect("venv has a parent"))
        .map_err(|e| format!("cannot create {}: {e}", venv.display()))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let make = || run_quiet(Command::new(&python).args(["-m", "venv", "--clear"]).arg(venv));
    if let Err(first) = make() {
        let system_python =
            std::env::var_os("PYTHON").is_none() && which("python3").is_some_and(|p| p.starts_with("/usr/bin"));
        if !system_python || !Path::new("/usr/bin/apt-get").is_file() {
            return Err(format!("`{python} -m venv` failed: {first}"));
        }
        eprintln!("    `{python} -m venv` failed; installing python3-venv and trying again");
        apt_install(&["python3-venv"]).map_err(|e| format!("`{python} -m venv` failed ({first}); {e}"))?;
        make().map_err(|e| format!("`{python} -m venv` failed: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Samba's Active Directory domain controller: Debian's packages.

/// Where Debian's package puts Samba's AD DC server.
pub const SAMBA_PATH: &str = "/usr/sbin/samba";

/// The packages of a Samba AD DC that can provision a domain and be driven from the command
/// line. `samba-ad-provision` holds the provisioning templates (without it provisioning fails);
/// `ldb-tools` and `ldap-utils` are the tools the tests change the directory with.
pub const SAMBA_PACKAGES: &[&str] =
    &["samba", "samba-ad-dc", "samba-ad-provision", "samba-dsdb-modules", "winbind", "ldb-tools", "ldap-utils"];

/// Installs Samba's AD DC with apt-get unless it is there. Debian's maintainer scripts do not
/// start the packaged services here (tests run their own server in a private folder).
pub fn install_samba(_ctx: &Context) -> Result<PathBuf, String> {
    let samba = PathBuf::from(SAMBA_PATH);
    let ready = || {
        samba.is_file()
            && Path::new("/usr/bin/samba-tool").is_file()
            && Path::new("/usr/share/samba/setup/provision.ldif").is_file()
            && Path::new("/usr/bin/ldapmodify").is_file()
    };
    if ready() {
        eprintln!("    samba: already installed");
        return Ok(samba);
    }
    if !Path::new("/usr/bin/apt-get").is_file() {
        return Err(format!(
            "{SAMBA_PATH} is missing and there is no apt-get to install it; install Samba's AD DC \
             ({}) and set KEYWARD_SAMBA to the samba binary",
            SAMBA_PACKAGES.join(" ")
        ));
    }
    eprintln!("    samba: installing Debian's {}", SAMBA_PACKAGES.join(" "));
    apt_install(SAMBA_PACKAGES)?;
    if !ready() {
        return Err(format!(
            "apt-get installed {} but {SAMBA_PATH} or its tools are missing",
            SAMBA_PACKAGES.join(" ")
        ));
    }
    Ok(samba)
}

// ---------------------------------------------------------------------------------------------
// Chromium and ChromeDriver: Debian's packages, for the browser tests of the HTML report.

/// Where Debian's packages put the browser and its driver.
pub const CHROMIUM_PATH: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER_PATH: &str = "/usr/bin/chromedriver";

/// Installs Debian's `chromium` and `chromium-driver` with apt-get unless both are there
/// (about 130 MB to download; the two always come as a matching pair).
fn install_chromium_packages() -> Result<(), String> {
    if Path::new(CHROMIUM_PATH).is_file() && Path::new(CHROMEDRIVER_PATH).is_file() {
        eprintln!("    chromium and chromedriver: already installed");
        return Ok(());
    }
    if !Path::new("/usr/bin/apt-get").is_file() {
        return Err(format!(
            "{CHROMIUM_PATH} or {CHROMEDRIVER_PATH} is missing and there is no apt-get to install them; \
             install Chromium and its ChromeDriver and set KEYWARD_CHROMIUM and KEYWARD_CHROMEDRIVER"
        ));
    }
    eprintln!("    chromium: installing Debian's chromium and chromium-driver");
    apt_install(&["chromium", "chromium-driver"])
}

pub fn install_chromium(_ctx: &Context) -> Result<PathBuf, String> {
    install_chromium_packages()?;
    let path = PathBuf::from(CHROMIUM_PATH);
    if !path.is_file() {
        return Err(format!("apt-get installed chromium but {CHROMIUM_PATH} is missing"));
    }
    Ok(path)
}

pub fn install_chromedriver(_ctx: &Context) -> Result<PathBuf, String> {
    install_chromium_packages()?;
    let path = PathBuf::from(CHROMEDRIVER_PATH);
    if !path.is_file() {
        return Err(format!("apt-get installed chromium-driver but {CHROMEDRIVER_PATH} is missing"));
    }
    run_quiet(Command::new(&path).arg("--version"))
        .map_err(|e| format!("`{CHROMEDRIVER_PATH} --version` failed: {e}"))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// `apt-get install -y --no-install-recommends PACKAGES`, after one `apt-get update` per run.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !APT_UPDATED.load(Ordering::SeqCst) {
        let mut update = apt_get();
        update.args(["update", "-q"]);
        run_logged(&mut update).map_err(|e| format!("apt-get update failed: {e}"))?;
        APT_UPDATED.store(true, Ordering::SeqCst);
    }
    let mut install = apt_get();
    install.args(["install", "-y", "-q", "--no-install-recommends"]);
    install.args(packages);
    run_logged(&mut install).map_err(|e| format!("apt-get install {} failed: {e}", packages.join(" ")))
}

fn apt_get() -> Command {
    let mut cmd = privileged("env");
    cmd.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
    cmd
}

/// A command run as root: directly when we are root, through `sudo -n` otherwise.
fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The first `name` on PATH, as a real path.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).and_then(|p| p.canonicalize().ok())
}

/// Runs a command with no stdin, keeping its output unless it fails.
fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    let output = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let tail = tail.join("\n");
    if tail.trim().is_empty() {
        Err(output.status.to_string())
    } else {
        Err(format!("{}\n{}", output.status, tail.trim_end()))
    }
}

/// Runs a command with no stdin, its output going to ours.
fn run_logged(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() { Ok(()) } else { Err(status.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_and_variables_are_distinct() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.env_var, b.env_var);
            }
            assert!(a.env_var.starts_with("KEYWARD_"));
        }
    }

    #[test]
    fn scim_version_is_pinned_exactly() {
        assert!(SCIM2_SERVER_VERSION.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(scim_stamp_contents(), format!("scim2-server=={SCIM2_SERVER_VERSION}\n"));
    }

    #[test]
    fn skipping_every_peer_sets_nothing() {
        let ctx = Context { target_dir: std::env::temp_dir() };
        let skip: Vec<String> = ALL.iter().map(|p| p.name.to_string()).collect();
        let prepared = prepare(&ctx, &skip, true).unwrap();
        assert!(prepared.env.is_empty());
        assert!(!prepared.all_ready);
    }
}
