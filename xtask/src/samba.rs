//! A throwaway Active Directory domain controller (Samba's) for the AD tests: `cargo xtask test`
//! starts one for the whole run and `cargo xtask samba` starts one by hand.
//!
//! Each start provisions a new domain, [`REALM`] (`DC=keyward,DC=test`), in a fresh folder
//! under `target/peers/samba/`, with `samba-tool domain provision --dns-backend=NONE` and an
//! Administrator password generated at start; `server services` is limited to `ldap` (no
//! Kerberos, SMB, DNS or replication: simple binds need none of them), and plain `ldap://`
//! accepts simple binds (`ldap server require strong auth = no`: it is a loopback-only test
//! server). TLS uses a throwaway CA and a server certificate for `IP:127.0.0.1` made with
//! openssl, since Samba's own self-signed certificate has no subjectAltName and rustls refuses
//! it. A service account, `keyward` in `CN=Users` and a member of Domain Admins, is what keyward
//! binds as; the tests change data "outside keyward" as Administrator.
//!
//! An AD DC listens on fixed ports (389, 636, 3268, 3269) that another server on the machine
//! (or a second test run) may hold. So Samba runs in a network namespace of its own, made for
//! it with unshare(2), whose loopback interface it alone uses; xtask forwards a free port on
//! the machine's loopback to each of its LDAP ports, connecting from inside the namespace. The
//! traffic never leaves loopback addresses. This needs root (Samba's AD DC needs root anyway).
//!
//! The tests learn everything through the variables of [`Samba::env`]. The server is killed
//! when the [`Samba`] value is dropped, and, on Linux, when the process that started it dies.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::slapd::{make_certificates, random_password, remove_stale_runs, run, write_private};

/// The DNS name of the test domain.
pub const REALM: &str = "keyward.test";
/// Its NetBIOS name.
pub const DOMAIN: &str = "KEYWARD";
/// Its naming context.
pub const BASE: &str = "DC=keyward,DC=test";
/// The account keyward binds as (created at start, a member of Domain Admins).
pub const SERVICE_ACCOUNT: &str = "keyward";

/// A running Samba AD DC.
pub struct Samba {
    child: Child,
    /// ldap:// on a loopback port forwarded to the DC's 389.
    pub url: String,
    /// ldaps:// on a loopback port forwarded to the DC's 636.
    pub ldaps_url: String,
    pub ca_file: PathBuf,
    pub admin_dn: String,
    pub admin_password: String,
    pub bind_dn: String,
    pub bind_password: String,
    pub dir: PathBuf,
}

impl Samba {
    /// The variables the tests read.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KEYWARD_AD_URL".into(), self.url.clone()),
            ("KEYWARD_AD_LDAPS_URL".into(), self.ldaps_url.clone()),
            ("KEYWARD_AD_CA_FILE".into(), self.ca_file.display().to_string()),
            ("KEYWARD_AD_BASE".into(), BASE.into()),
            ("KEYWARD_AD_REALM".into(), REALM.into()),
            ("KEYWARD_AD_DOMAIN".into(), DOMAIN.into()),
            ("KEYWARD_AD_ADMIN_DN".into(), self.admin_dn.clone()),
            ("KEYWARD_AD_ADMIN_PASSWORD".into(), self.admin_password.clone()),
            ("KEYWARD_AD_BIND_DN".into(), self.bind_dn.clone()),
            ("KEYWARD_AD_BIND_PASSWORD".into(), self.bind_password.clone()),
        ]
    }

    /// Waits until the server exits (for `cargo xtask samba`).
    pub fn wait(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Err(format!("samba exited ({status}):\n{}", self.log_tail()))
    }

    /// Provisions a domain under `root` and starts the DC in its own network namespace.
    pub fn start(samba: &Path, root: &Path) -> Result<Samba, String> {
        if !is_root() {
            return Err("Samba's AD DC must run as root (and its network namespace needs root too)".into());
        }
        remove_stale_runs(root);
        let dir = root.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).map_err(|e| format!("cannot create {}: {e}", tls.display()))?;
        std::fs::create_dir_all(dir.join("run")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        make_certificates(&tls).map_err(|e| format!("cannot make the DC's certificates: {e}"))?;

        // AD's default policy wants three of: upper case, lower case, digits, symbols.
        let admin_password = format!("Kw1-{}", random_password()?);
        let bind_password = format!("Kw2-{}", random_password()?);
        let domain_dir = dir.join("domain");
        let conf = domain_dir.join("etc").join("smb.conf");
        let samba_tool = samba.with_file_name("samba-tool");
        let samba_tool = if samba_tool.is_file() { samba_tool } else { PathBuf::from("/usr/bin/samba-tool") };

        let mut provision = Command::new(&samba_tool);
        provision
            .args(["domain", "provision", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307"])
            .arg(format!("--realm={}", REALM.to_uppercase()))
            .arg(format!("--domain={DOMAIN}"))
            .arg("--host-name=dc1")
            .arg(format!("--adminpass={admin_password}"))
            .arg(format!("--targetdir={}", domain_dir.display()));
        for option in options(&dir) {
            provision.arg(format!("--option={option}"));
        }
        run(&mut provision).map_err(|e| format!("provisioning the test domain failed: {e}"))?;
        // Simple binds over plain ldap:// (the tests' clients use it on loopback, as slapd's
        // do). Provisioning does not keep this option, so it is added to the generated file.
        let text = std::fs::read_to_string(&conf).map_err(|e| format!("cannot read {}: {e}", conf.display()))?;
        let text = text.replacen("[global]\n", "[global]\n\tldap server require strong auth = no\n", 1);
        if !text.contains("ldap server require strong auth = no") {
            return Err(format!("{} has no [global] section", conf.display()));
        }
        write_private(&conf, &text)?;

        // The service account keyward binds as, made offline in the new database.
        let sam = domain_dir.join("private").join("sam.ldb");
        let tool = |args: &[&str]| {
            run(Command::new(&samba_tool).args(args).arg("-H").arg(&sam).arg("-s").arg(&conf))
                .map_err(|e| format!("samba-tool {} failed: {e}", args[..2].join(" ")))
        };
        tool(&["user", "create", SERVICE_ACCOUNT, &bind_password, "--description=keyward's service account"])?;
        tool(&["group", "addmembers", "Domain Admins", SERVICE_ACCOUNT])?;
        write_private(&dir.join("admin.pw"), &admin_password)?;

        let log = std::fs::File::create(dir.join("samba.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(samba);
        // Interactive (foreground, so it stays our child), one process, log to stdout.
        cmd.args(["-i", "-M", "single", "--debug-stdout", "-s"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        in_own_network_namespace(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", samba.display()))?;
        let netns = format!("/proc/{}/ns/net", child.id());

        let admin_dn = format!("CN=Administrator,CN=Users,{BASE}");
        let bind_dn = format!("CN={SERVICE_ACCOUNT},CN=Users,{BASE}");
        let ldap_port = forward(&netns, 389)?;
        let ldaps_port = forward(&netns, 636)?;
        let mut server = Samba {
            child,
            url: format!("ldap://127.0.0.1:{ldap_port}"),
            ldaps_url: format!("ldaps://127.0.0.1:{ldaps_port}"),
            ca_file: tls.join("ca.pem"),
            admin_dn,
            admin_password,
            bind_dn,
            bind_password,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until the DC accepts a bind as Administrator and answers a search.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("samba exited ({status}) before answering:\n{}", self.log_tail()));
            }
            let ok = Command::new("ldapsearch")
                .args(["-x", "-LLL", "-H", &self.url, "-D", &self.admin_dn, "-y"])
                .arg(self.dir.join("admin.pw"))
                .args(["-b", BASE, "-s", "base", "dn"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("samba did not answer on {} within 90 s:\n{}", self.url, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("samba.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The smb.conf options given at provisioning (written into the generated smb.conf).
fn options(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "interfaces = lo".into(),
        "bind interfaces only = yes".into(),
        "netbios name = DC1".into(),
        // LDAP only: no Kerberos, SMB, DNS, NetBIOS, RPC or replication services.
        "server services = ldap".into(),
        "tls enabled = yes".into(),
        format!("tls keyfile = {d}/tls/server.key"),
        format!("tls certfile = {d}/tls/server.pem"),
        format!("tls cafile = {d}/tls/ca.pem"),
        format!("pid directory = {d}/run"),
        format!("log file = {d}/samba-%m.log"),
        "log level = 1".into(),
    ]
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the command in a new network namespace whose loopback interface is up, and asks Linux
/// to kill it when xtask dies.
fn in_own_network_namespace(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec this calls only async-signal-safe system calls (prctl,
    // unshare, socket, ioctl, close) on memory of its own stack.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 || libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (i, b) in b"lo".iter().enumerate() {
                ifr.ifr_name[i] = *b as libc::c_char;
            }
            let mut ok = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) == 0;
            if ok {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                ok = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr) == 0;
            }
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if ok { Ok(()) } else { Err(err) }
        });
    }
}

/// Listens on a free port of the machine's loopback and forwards each connection to `port` on
/// the loopback of the network namespace `netns` (a `/proc/PID/ns/net` path). Returns the port.
/// The forwarding threads end with xtask.
fn forward(netns: &str, port: u16) -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free loopback port: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?.port();
    let netns = netns.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let netns = netns.clone();
            std::thread::spawn(move || {
                if let Ok(server) = connect_in(&netns, port) {
                    pipe(client, server);
                }
            });
        }
    });
    Ok(local)
}

/// Connects to 127.0.0.1:`port` in the network namespace `netns`. The calling thread moves into
/// that namespace (setns affects only the calling thread); a socket stays in the namespace it
/// was made in.
fn connect_in(netns: &str, port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(netns)?;
    // SAFETY: a valid namespace file descriptor; only this thread changes namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(10))
}

/// Copies bytes both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let one_way = |mut from: TcpStream, mut to: TcpStream| {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
        let _ = from.shutdown(std::net::Shutdown::Read);
    };
    let t = std::thread::spawn(move || one_way(a, b2));
    one_way(b, a2);
    let _ = t.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_serve_ldap_only_with_the_generated_certificates() {
        let o = options(Path::new("/t/run-1"));
        assert!(o.contains(&"server services = ldap".to_string()));
        assert!(o.contains(&"tls certfile = /t/run-1/tls/server.pem".to_string()));
        assert!(o.contains(&"tls cafile = /t/run-1/tls/ca.pem".to_string()));
        assert!(o.iter().all(|l| !l.contains('\n')));
    }
}
