//! A throw-away PostgreSQL server for the test suite: a fresh cluster in a temporary directory,
//! listening on a free loopback port, stopped and deleted when dropped.
//!
//! It runs with `fsync=off`: fine for functional tests, whose data is thrown away, and wrong
//! for benchmarks and crash tests, which must run with the durability a user would run with.
//! When the binaries are missing and this runs as root on a machine with apt-get, PostgreSQL 15
//! is installed first. As root, the server runs as the `postgres` user (initdb refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The environment variable naming the server to the tests (`postgres://...`).
pub const URL_ENV: &str = "ONESTOP_TEST_POSTGRES";
/// The certificate (PEM) of the CA that signed the server's, for the tests of TLS.
pub const CA_ENV: &str = "ONESTOP_TEST_POSTGRES_CA";
/// A client certificate and its key (PEM) for [`CERT_USER`], signed by the same CA.
pub const CLIENT_CERT_ENV: &str = "ONESTOP_TEST_POSTGRES_CLIENT_CERT";
pub const CLIENT_KEY_ENV: &str = "ONESTOP_TEST_POSTGRES_CLIENT_KEY";
/// The role that may log in only over TLS with a client certificate (pg_hba `cert`); the tests
/// create it.
const CERT_USER: &str = "onestop_cert";
/// Where Debian and Ubuntu keep each major version's binaries (`<dir>/<version>/bin`).
const VERSIONS_DIR: &str = "/usr/lib/postgresql";
/// What to install when no PostgreSQL is found.
const APT_PACKAGES: [&str; 2] = ["postgresql-15", "postgresql-client-15"];
/// The system user the server runs as when this runs as root.
const SERVER_USER: &str = "postgres";
/// Temporary directories are named by this and the pid of the xtask that made them.
const DIR_PREFIX: &str = "onestop-test-pg-";
/// Tries at a free port (another process may take the port between the probe and the start).
const START_ATTEMPTS: usize = 3;
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECONDS: &str = "60";

/// The two programs needed to make and run a cluster.
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

/// A running server; dropping it stops the server and deletes its directory.
pub struct Server {
    bin: Binaries,
    dir: PathBuf,
    as_server_user: bool,
    /// The port, once started; a stopped server has none.
    port: Option<u16>,
    /// With fsync on, as a user would run it (benchmarks); off for functional tests.
    durable: bool,
}

impl Server {
    /// Makes a cluster for functional tests (fsync off) and starts it.
    pub fn start() -> Result<Server, String> {
        Server::start_with(false)
    }

    /// Makes a cluster and starts it, durable (fsync on, the default) or not.
    pub fn start_with(durable: bool) -> Result<Server, String> {
        let as_server_user = is_root();
        let bin = match find_binaries() {
            Some(bin) => bin,
            None => {
                install(as_server_user)?;
                find_binaries().ok_or("PostgreSQL is still missing after installing it")?
            }
        };
        remove_stale(&bin, as_server_user);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on, dropping the server deletes the directory.
        let mut server = Server { bin, dir, as_server_user, port: None, durable };
        if as_server_user {
            succeed(Command::new("chown").arg(format!("{SERVER_USER}:")).arg(&server.dir))?;
        }
        server.initdb()?;
        server.certificates()?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match server.pg_ctl_start(port) {
                Ok(()) => {
                    server.port = Some(port);
                    return Ok(server);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The URL of the server's `postgres` database, as the superuser `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port.unwrap_or_default())
    }

    /// A command running `program`, as the server user when this runs as root.
    fn command(&self, program: &Path) -> Command {
        let mut command = if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The server user may not be allowed into the current directory.
        command.current_dir(&self.dir);
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The certificate of the CA that signed the server's (TLS is on, and optional for clients).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The client certificate and key for the role [`CERT_USER`].
    pub fn client_identity(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// A throw-away CA, a server certificate it signs for 127.0.0.1 and localhost, and a client
    /// certificate for [`CERT_USER`], so that the tests can connect with TLS, verify the
    /// server and be verified by it. The server's key is the server user's, readable by it
    /// alone, as PostgreSQL requires; the server trusts client certificates of the same CA
    /// (`root.crt`), and [`CERT_USER`] logs in with one and nothing else (`pg_hba.conf`).
    fn certificates(&self) -> Result<(), String> {
        let failed = |e: rcgen::Error| format!("cannot make the test certificates: {e}");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "onestop test CA");
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let ca_certificate = ca.self_signed(&ca_key).map_err(failed)?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let server = rcgen::CertificateParams::new(names).map_err(failed)?;
        let key = rcgen::KeyPair::generate().map_err(failed)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let certificate = server.signed_by(&key, &issuer).map_err(failed)?;
        let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        client.distinguished_name.push(rcgen::DnType::CommonName, CERT_USER);
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = rcgen::KeyPair::generate().map_err(failed)?;
        let client_certificate = client.signed_by(&client_key, &issuer).map_err(failed)?;
        let write = |path: PathBuf, text: String, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&path, text)
                .and_then(|()| std::fs::set_permissions(&path, PermissionsExt::from_mode(mode)))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(self.ca(), ca_certificate.pem(), 0o644)?;
        let (client_crt, client_key_file) = self.client_identity();
        write(client_crt, client_certificate.pem(), 0o644)?;
        write(client_key_file, client_key.serialize_pem(), 0o600)?;
        let (crt, key_file) = (self.data().join("server.crt"), self.data().join("server.key"));
        let root = self.data().join("root.crt");
        write(crt.clone(), certificate.pem(), 0o644)?;
        write(key_file.clone(), key.serialize_pem(), 0o600)?;
        write(root.clone(), ca_certificate.pem(), 0o644)?;
        let hba = self.data().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba)
            .map_err(|e| format!("cannot read {}: {e}", hba.display()))?;
        // The first matching line decides: the certificate role never gets the trust below.
        let cert_rules = format!(
            "hostssl all {CERT_USER} 127.0.0.1/32 cert\nhost all {CERT_USER} 0.0.0.0/0 reject\n"
        );
        write(hba.clone(), format!("{cert_rules}{rules}"), 0o600)?;
        if self.as_server_user {
            let mut chown = Command::new("chown");
            succeed(chown.arg(format!("{SERVER_USER}:")).args([&crt, &key_file, &root, &hba]))?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), String> {
        let mut command = self.command(&self.bin.initdb);
        command.arg("-D").arg(self.data());
        command.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "-N"]);
        succeed(&mut command)
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), String> {
        // fsync=off: the data is thrown away, so durability buys nothing here (module doc);
        // benchmarks run durable, with PostgreSQL's defaults.
        let fsync = if self.durable { "on" } else { "off" };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync={fsync} -c max_connections=200 \
             -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key \
             -c ssl_ca_file=root.crt",
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let mut command = self.command(&self.bin.pg_ctl);
        command.arg("-D").arg(self.data()).arg("-l").arg(&log);
        command.args(["-w", "-t", PG_CTL_WAIT_SECONDS, "-o", &options, "start"]);
        succeed(&mut command).map_err(|error| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{error}\nserver log:\n{log}")
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.port.is_some() {
            let mut command = self.command(&self.bin.pg_ctl);
            command.arg("-D").arg(self.data());
            command.args(["-m", "fast", "-w", "-t", PG_CTL_WAIT_SECONDS, "stop"]);
            if let Err(error) = succeed(&mut command) {
                eprintln!("warning: cannot stop the test PostgreSQL: {error}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command` to completion; its output becomes the error when it fails.
fn succeed(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output: Output = command.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output();
    output.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `initdb` and `pg_ctl` from PATH, else from the newest version installed in `VERSIONS_DIR`.
fn find_binaries() -> Option<Binaries> {
    let in_path = |name: &str| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file())
    };
    if let (Some(initdb), Some(pg_ctl)) = (in_path("initdb"), in_path("pg_ctl")) {
        return Some(Binaries { initdb, pg_ctl });
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(VERSIONS_DIR)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let major = name.split('.').next()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().find_map(|(_, bin)| {
        let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
        (initdb.is_file() && pg_ctl.is_file()).then_some(Binaries { initdb, pg_ctl })
    })
}

/// Installs PostgreSQL with apt-get, which needs root.
fn install(is_root: bool) -> Result<(), String> {
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !is_root || !has_apt {
        return Err("PostgreSQL (initdb, pg_ctl) is not installed, and installing it needs \
            root and apt-get"
            .into());
    }
    eprintln!("installing {} for the store tests", APT_PACKAGES.join(" "));
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        succeed(&mut command)
    };
    apt(&["update"])?;
    apt(&[&["install", "-y", "--no-install-recommends"][..], &APT_PACKAGES[..]].concat())
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|address| address.port()).map_err(|e| format!("no free port: {e}"))
}

/// Stops and deletes the servers of earlier runs that died without cleaning up (an
/// interrupted run: the server is in its own session, so ^C does not reach it).
fn remove_stale(bin: &Binaries, as_server_user: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(DIR_PREFIX).and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_is_alive(pid) {
            continue;
        }
        eprintln!(
            "removing the test PostgreSQL of an interrupted run ({})",
            entry.path().display()
        );
        let stale = Server {
            bin: Binaries { initdb: bin.initdb.clone(), pg_ctl: bin.pg_ctl.clone() },
            dir: entry.path(),
            as_server_user,
            // The port does not matter for stopping it; a server that is not running has none.
            port: entry.path().join("data/postmaster.pid").exists().then_some(0),
            durable: false,
        };
        drop(stale);
    }
}

fn process_is_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    let probe = Command::new("kill").args(["-0", &pid.to_string()]).output();
    probe.is_ok_and(|output| output.status.success())
}
