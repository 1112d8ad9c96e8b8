//! A throwaway OpenLDAP server for the LDAP tests: `cargo xtask test` starts one for the whole
//! run and `cargo xtask slapd` starts one by hand.
//!
//! The server gets a generated `slapd.conf` and an `mdb` database in a fresh folder under
//! `target/peers/slapd/`, the core, cosine, inetorgperson and nis schemas, the ppolicy overlay
//! (for the `pwdAccountLockedTime` lock), a root DN and a service account whose passwords are
//! generated at start, a free loopback port, and, when the `openssl` command can make a
//! throwaway CA and server certificate, a second port serving `ldaps://` (StartTLS works on the
//! first). The service account (the one keyward binds as) is subject to a size limit of
//! [`SIZE_LIMIT`] entries, so a search that is not paged fails beyond it; the root DN, which
//! the tests use to seed and to change data "outside keyward", has no limits (slapd exempts
//! it).
//!
//! The tests learn everything through the variables of [`Slapd::env`]. The server is killed
//! when the [`Slapd`] value is dropped, and, on Linux, when the process that started it dies.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The suffix of the test directory.
pub const BASE: &str = "dc=keyward,dc=test";
/// Entries one search may return to the service account without paging.
pub const SIZE_LIMIT: usize = 1000;
/// A second database without the syncprov overlay: a server that offers no change feed.
pub const PLAIN_BASE: &str = "dc=plain,dc=test";
/// The accesslog database (slapo-accesslog(5)) that logs the writes to [`BASE`]: readable by
/// the service account, writable by its own root DN `cn=admin,cn=accesslog` (whose password is
/// the root DN's), which the tests use to purge it.
pub const LOG_BASE: &str = "cn=accesslog";

/// Where Debian keeps the schemas and the loadable modules.
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";

/// A running slapd.
pub struct Slapd {
    child: Child,
    pub url: String,
    pub admin_dn: String,
    pub admin_password: String,
    pub bind_dn: String,
    pub bind_password: String,
    pub dir: PathBuf,
    /// The ldaps:// URL and the CA that signed the server's certificate, when openssl could
    /// make them (the TLS test fails otherwise).
    pub tls: Option<(String, PathBuf)>,
}

impl Slapd {
    /// The variables the tests read.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("KEYWARD_LDAP_URL".into(), self.url.clone()),
            ("KEYWARD_LDAP_BASE".into(), BASE.into()),
            ("KEYWARD_LDAP_ADMIN_DN".into(), self.admin_dn.clone()),
            ("KEYWARD_LDAP_ADMIN_PASSWORD".into(), self.admin_password.clone()),
            ("KEYWARD_LDAP_BIND_DN".into(), self.bind_dn.clone()),
            ("KEYWARD_LDAP_BIND_PASSWORD".into(), self.bind_password.clone()),
            ("KEYWARD_LDAP_SIZE_LIMIT".into(), SIZE_LIMIT.to_string()),
            ("KEYWARD_LDAP_PLAIN_BASE".into(), PLAIN_BASE.into()),
            ("KEYWARD_LDAP_LOG_BASE".into(), LOG_BASE.into()),
        ];
        if let Some((url, ca)) = &self.tls {
            v.push(("KEYWARD_LDAP_LDAPS_URL".into(), url.clone()));
            v.push(("KEYWARD_LDAP_CA_FILE".into(), ca.display().to_string()));
        }
        v
    }

    /// Waits until the server exits (for `cargo xtask slapd`).
    pub fn wait(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Err(format!("slapd exited ({status})"))
    }

    /// Generates the configuration and database under `root` and starts `slapd`.
    pub fn start(slapd: &Path, root: &Path) -> Result<Slapd, String> {
        remove_stale_runs(root);
        let dir = root.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for db in ["db", "db-plain", "db-log"] {
            std::fs::create_dir_all(dir.join(db)).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let admin_dn = format!("cn=admin,{BASE}");
        let bind_dn = format!("cn=keyward,ou=services,{BASE}");
        let admin_password = random_password()?;
        let bind_password = random_password()?;
        let tls = match make_certificates(&dir) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("    note: no TLS for slapd (the TLS test will fail): {e}");
                false
            }
        };
        let conf = dir.join("slapd.conf");
        write_private(&conf, &config(&dir, &admin_dn, &admin_password, &bind_dn, tls))?;
        write_private(&dir.join("seed.ldif"), &seed(&bind_dn, &bind_password))?;
        write_private(&dir.join("admin.pw"), &admin_password)?;

        // Load the seed offline, then serve.
        let slapadd = slapd.with_file_name("slapadd");
        let slapadd = if slapadd.is_file() { slapadd } else { PathBuf::from("/usr/sbin/slapadd") };
        run(Command::new(&slapadd).arg("-f").arg(&conf).args(["-b", BASE, "-l"]).arg(dir.join("seed.ldif")))?;
        write_private(
            &dir.join("plain.ldif"),
            &format!("dn: {PLAIN_BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: plain\no: no feed\n"),
        )?;
        run(Command::new(&slapadd).arg("-f").arg(&conf).args(["-b", PLAIN_BASE, "-l"]).arg(dir.join("plain.ldif")))?;

        let port = free_port()?;
        let url = format!("ldap://127.0.0.1:{port}");
        let mut listen = format!("{url}/");
        let tls = if tls {
            let ldaps = format!("ldaps://127.0.0.1:{}", free_port()?);
            listen.push_str(&format!(" {ldaps}/"));
            Some((ldaps, dir.join("ca.pem")))
        } else {
            None
        };
        let mut cmd = Command::new(slapd);
        cmd.arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(listen)
            // Debug level 0 keeps slapd in the foreground, so it stays our child.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("slapd.log")).map_err(|e| e.to_string())?);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", slapd.display()))?;
        let mut server = Slapd { child, url, admin_dn, admin_password, bind_dn, bind_password, dir, tls };
        server.wait_ready(port)?;
        Ok(server)
    }

    /// Waits until slapd accepts a bind as the root DN.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("slapd exited ({status}) before answering:\n{}", self.log_tail()));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                let ok = Command::new("ldapwhoami")
                    .args(["-x", "-H", &self.url, "-D", &self.admin_dn, "-y"])
                    .arg(self.dir.join("admin.pw"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("slapd did not answer on {} within 30 s:\n{}", self.url, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the folders of earlier runs whose xtask is gone (an interrupted run cannot clean up).
pub(crate) fn remove_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("run-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// slapd.conf: schemas, modules, the accesslog database, one mdb database with the ppolicy,
/// syncprov and accesslog overlays, the root DN, and access for the service account; a second
/// database without overlays.
fn config(dir: &Path, admin_dn: &str, admin_password: &str, bind_dn: &str, tls: bool) -> String {
    let d = dir.display();
    let tls = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n"
        )
    } else {
        String::new()
    };
    format!(
        "include {SCHEMA_DIR}/core.schema\n\
         include {SCHEMA_DIR}/cosine.schema\n\
         include {SCHEMA_DIR}/inetorgperson.schema\n\
         include {SCHEMA_DIR}/nis.schema\n\
         modulepath {MODULE_DIR}\n\
         moduleload back_mdb\n\
         moduleload ppolicy\n\
         moduleload syncprov\n\
         moduleload accesslog\n\
         pidfile {d}/slapd.pid\n\
         argsfile {d}/slapd.args\n\
         {tls}\n\
         database mdb\n\
         suffix \"{LOG_BASE}\"\n\
         rootdn \"cn=admin,{LOG_BASE}\"\n\
         rootpw {admin_password}\n\
         directory {d}/db-log\n\
         maxsize 104857600\n\
         dbnosync\n\
         index entryCSN,objectClass,reqEnd,reqResult,reqStart eq\n\
         access to * by dn.exact=\"{bind_dn}\" read by * none\n\
         \n\
         database mdb\n\
         suffix \"{BASE}\"\n\
         rootdn \"{admin_dn}\"\n\
         rootpw {admin_password}\n\
         directory {d}/db\n\
         maxsize 1073741824\n\
         dbnosync\n\
         index objectClass eq\n\
         index uid,cn eq\n\
         index member eq\n\
         index entryCSN,entryUUID eq\n\
         limits dn.exact=\"{bind_dn}\" size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited\n\
         overlay ppolicy\n\
         overlay syncprov\n\
         overlay accesslog\n\
         logdb \"{LOG_BASE}\"\n\
         logops writes\n\
         logsuccess TRUE\n\
         logpurge 07+00:00 01+00:00\n\
         access to attrs=userPassword by self write by anonymous auth by * none\n\
         access to * by dn.exact=\"{bind_dn}\" write by * none\n\
         \n\
         database mdb\n\
         suffix \"{PLAIN_BASE}\"\n\
         directory {d}/db-plain\n\
         maxsize 104857600\n\
         dbnosync\n\
         access to * by dn.exact=\"{admin_dn}\" write by dn.exact=\"{bind_dn}\" write by * none\n"
    )
}

fn seed(bind_dn: &str, bind_password: &str) -> String {
    format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: keyward\no: keyward tests\n\n\
         dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {bind_dn}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: keyward\nsn: keyward\nuserPassword: {bind_password}\n"
    )
}

/// A throwaway CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.pem`, `server.key`), made with the openssl command, valid for two days.
pub(crate) fn make_certificates(dir: &Path) -> Result<(), String> {
    let ca_conf = "[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\nprompt=no\n[dn]\nCN=keyward test CA\n\
                   [v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
                   subjectKeyIdentifier=hash\n";
    let server_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
                      subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    write_private(&dir.join("ca.cnf"), ca_conf)?;
    write_private(&dir.join("server.ext"), server_ext)?;
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[&["req", "-x509", "-config", "ca.cnf", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"][..], &ec]
            .concat(),
    )?;
    openssl(&[&["req", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"][..], &ec].concat())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])
}

/// 32 hex characters from the system's random source.
pub(crate) fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free loopback port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed ({}): {}", cmd.get_program(), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Asks Linux to kill the child when xtask dies, so an interrupted run leaves no server behind.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_limits_only_the_service_account() {
        let c = config(Path::new("/tmp/x"), "cn=admin,dc=a", "pw", "cn=svc,dc=a", true);
        assert!(c.contains("TLSCertificateFile /tmp/x/server.pem"));
        assert!(!config(Path::new("/tmp/x"), "a", "b", "c", false).contains("TLS"));
        assert!(c.contains(&format!("limits dn.exact=\"cn=svc,dc=a\" size.soft={SIZE_LIMIT}")));
        assert!(c.contains("size.prtotal=unlimited"));
        assert!(c.contains("overlay ppolicy"));
        assert!(c.contains("directory /tmp/x/db"));
        assert!(c.contains(&format!("logdb \"{LOG_BASE}\"")));
        let log_db = c.find(&format!("suffix \"{LOG_BASE}\"")).unwrap();
        assert!(log_db < c.find(&format!("suffix \"{BASE}\"")).unwrap(), "the log database comes first");
        assert!(c.contains("access to * by dn.exact=\"cn=svc,dc=a\" read"));
        let p = random_password().unwrap();
        assert_eq!(p.len(), 32);
        assert_ne!(p, random_password().unwrap());
    }
}
