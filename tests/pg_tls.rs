//! TLS to PostgreSQL and the password file, against a private PostgreSQL
//! cluster this test starts (Debian's binaries, as the `postgres` user, on a
//! free port) with `ssl = on`, a CA and a server certificate for `localhost`
//! made here, and a `pg_hba.conf` that accepts TLS connections only. The
//! shared server at 127.0.0.1:5432 is not touched.
//!
//! Without the binaries (or root, to become `postgres`) the test is skipped
//! with a message; under `CI=true` it fails instead.
mod common;

use common::Project;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PostgreSQL cluster of the test's own, stopped on drop.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Its Unix socket directory (also the temp dir holding everything).
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .output();
    }
}

/// A command run as the `postgres` OS user (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

fn run_ok(c: &mut Command, what: &str) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Debian's server binaries, or `None` (after saying why) outside CI.
fn server_binaries_or_skip() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .max();
    let why = match &found {
        None => "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin",
        Some(_) if !is_root() => "not root: cannot run initdb as postgres",
        Some(_) => return found,
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!in_ci, "{why} (CI=true: this test fails rather than skips)");
    eprintln!("skipping: {why}");
    None
}

/// PEM files: a CA, a server certificate for `localhost` it signed with its
/// key, and another CA that signed nothing.
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate().expect("ca key")).expect("ca")
    };
    let right = ca("jobslot test CA");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&key, &right)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), right.pem()).expect("ca.pem");
    std::fs::write(dir.join("wrong-ca.pem"), ca("another CA").pem()).expect("wrong-ca.pem");
    std::fs::write(dir.join("server.crt"), cert.pem()).expect("server.crt");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("server.key");
}

fn start_cluster(bin: PathBuf) -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let uid = String::from_utf8(run_ok(Command::new("id").args(["-u", "postgres"]), "id").stdout)
        .expect("uid");
    let uid: u32 = uid.trim().parse().expect("uid number");
    certificates(dir.path());
    for f in ["", "ca.pem", "server.crt", "server.key"] {
        std::os::unix::fs::chown(dir.path().join(f), Some(uid), None).expect("chown");
    }
    let key = dir.path().join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    let data = dir.path().join("data");
    run_ok(
        as_postgres(&bin.join("initdb"))
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-D"])
            .arg(&data),
        "initdb",
    );
    let port = common::http::free_port();
    let d = dir.path().display();
    let conf = format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n\
         ssl = on\nssl_ca_file = '{d}/ca.pem'\nssl_cert_file = '{d}/server.crt'\n\
         ssl_key_file = '{d}/server.key'\nfsync = off\n"
    );
    let mut c = std::fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
    c.push_str(&conf);
    std::fs::write(data.join("postgresql.conf"), c).expect("write conf");
    // TLS connections only; jobber must give its password.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all postgres trust\n\
         hostssl all jobber 127.0.0.1/32 scram-sha-256\n\
         hostssl all all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    let cluster = Cluster {
        bin,
        data,
        dir,
        port,
    };
    run_ok(
        as_postgres(&cluster.bin.join("pg_ctl"))
            .args(["start", "-w", "-t", "30", "-D"])
            .arg(&cluster.data)
            .arg("-l")
            .arg(cluster.dir.path().join("server.log")),
        "pg_ctl start",
    );
    run_ok(
        as_postgres(&cluster.bin.join("psql"))
            .arg("-h")
            .arg(cluster.dir.path())
            .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(
                "CREATE ROLE jobber LOGIN PASSWORD 'right-password'; \
                 GRANT CREATE ON DATABASE postgres TO jobber;",
            ),
        "create role",
    );
    cluster
}

impl Cluster {
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A URL for `user@host` with the query `extra`, tables in `schema`.
    fn url(&self, user: &str, host: &str, schema: &str, extra: &str) -> String {
        format!(
            "postgres://{user}@{host}:{}/postgres?options=-csearch_path%3D{schema}{extra}",
            self.port
        )
    }
}

/// `jobslot tasks` on `url` with `env`; its exit status and stderr.
fn tasks(p: &Project, url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = p
        .cmd()
        .env("JOBSLOT_DATABASE", url)
        .envs(env.iter().copied())
        .arg("tasks")
        .output()
        .expect("run jobslot tasks");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        // What a user sees, for `--nocapture`.
        eprint!("jobslot tasks on {url}:\n  {stderr}");
    }
    (out.status.success(), stderr)
}

#[test]
fn postgres_over_tls_with_libpq_modes_and_a_password_file() {
    let Some(bin) = server_binaries_or_skip() else {
        return;
    };
    let cluster = start_cluster(bin);
    let p = Project::new();
    // No ~/.postgresql/root.crt to change `require`'s meaning.
    p.set_env("HOME", &p.path().display().to_string());
    p.job("hello", "echo hello from a TLS-backed task");
    let ca = cluster.file("ca.pem");
    let wrong_ca = cluster.file("wrong-ca.pem");

    // verify-full with the right CA and the certificate's host name: runs a task.
    let full = cluster.url(
        "postgres",
        "localhost",
        "tls_run",
        &format!("&sslmode=verify-full&sslrootcert={ca}"),
    );
    p.set_env("JOBSLOT_DATABASE", &full);
    let instance = p.start("tls", 2, &[]);
    let out = p
        .cmd()
        .args(["enqueue", "hello", "--wait"])
        .output()
        .expect("enqueue");
    assert!(
        out.status.success(),
        "verify-full: enqueue --wait failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.stderr_of("tls")
    );
    let listed = p.cli_json(&["tasks", "--job", "hello"]);
    assert_eq!(listed[0]["status"], "completed", "{listed}");
    // Every connection went through TLS (pg_hba.conf allows nothing else),
    // the change listener's too.
    let listening = run_ok(
        as_postgres(&cluster.bin.join("psql"))
            .arg("-h")
            .arg(cluster.dir.path())
            .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-Atc"])
            .arg(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.application_name = 'jobslot' AND a.query LIKE 'LISTEN%' AND s.ssl",
            ),
        "psql",
    );
    assert_eq!(String::from_utf8_lossy(&listening.stdout).trim(), "1");
    assert!(instance.stop().success());

    // verify-full with a CA that did not sign the server's certificate.
    let url = cluster.url(
        "postgres",
        "localhost",
        "tls_a",
        &format!("&sslmode=verify-full&sslrootcert={wrong_ca}"),
    );
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok, "a wrong CA was accepted");
    assert!(
        err.contains(&format!(
            "the server's certificate is not trusted by sslrootcert {wrong_ca}"
        )),
        "{err}"
    );

    // verify-full to 127.0.0.1: the certificate is for localhost only.
    let url = cluster.url(
        "postgres",
        "127.0.0.1",
        "tls_a",
        &format!("&sslmode=verify-full&sslrootcert={ca}"),
    );
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok, "a host name mismatch was accepted");
    assert!(
        err.contains("the server's certificate does not match the host name \"127.0.0.1\""),
        "{err}"
    );

    // verify-ca to 127.0.0.1: the chain is checked, the name is not.
    let url = cluster.url(
        "postgres",
        "127.0.0.1",
        "tls_a",
        &format!("&sslmode=verify-ca&sslrootcert={ca}"),
    );
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(ok, "verify-ca with the right CA: {err}");
    // …and with the wrong CA it fails.
    let url = cluster.url(
        "postgres",
        "127.0.0.1",
        "tls_a",
        &format!("&sslmode=verify-ca&sslrootcert={wrong_ca}"),
    );
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok && err.contains("not trusted by sslrootcert"), "{err}");

    // A missing root file is named.
    let missing = cluster.file("missing.pem");
    let url = cluster.url(
        "postgres",
        "localhost",
        "tls_a",
        &format!("&sslmode=verify-full&sslrootcert={missing}"),
    );
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok && err.contains(&missing), "{err}");

    // require: encrypted, nothing checked.
    let url = cluster.url("postgres", "127.0.0.1", "tls_a", "&sslmode=require");
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(ok, "require: {err}");

    // The default (prefer) takes TLS when the server offers it.
    let url = cluster.url("postgres", "127.0.0.1", "tls_a", "");
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(ok, "default sslmode: {err}");

    // disable: the server refuses, and its reason is shown.
    let url = cluster.url("postgres", "127.0.0.1", "tls_a", "&sslmode=disable");
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok, "a plain connection was accepted");
    assert!(
        err.contains("no pg_hba.conf entry") && err.contains("no encryption"),
        "{err}"
    );

    // The password from JOBSLOT_DATABASE_PASSWORD_FILE (trailing newline dropped).
    let secret = p.path().join("db-password");
    std::fs::write(&secret, "right-password\n").expect("password file");
    let secret = secret.display().to_string();
    let url = cluster.url("jobber", "localhost", "tls_pw", "&sslmode=require");
    let (ok, err) = tasks(&p, &url, &[("JOBSLOT_DATABASE_PASSWORD_FILE", &secret)]);
    assert!(ok, "password file: {err}");
    // Without it, the server asks for a password that is not there.
    let (ok, err) = tasks(&p, &url, &[]);
    assert!(!ok && err.contains("password missing"), "{err}");
    // A wrong password in the file.
    let wrong = p.path().join("wrong-password");
    std::fs::write(&wrong, "not-it\n").expect("password file");
    let (ok, err) = tasks(
        &p,
        &url,
        &[(
            "JOBSLOT_DATABASE_PASSWORD_FILE",
            &wrong.display().to_string(),
        )],
    );
    assert!(!ok, "a wrong password was accepted");
    assert!(
        err.contains("password authentication failed for user \"jobber\""),
        "{err}"
    );
    // A wrong password in the URL: refused, and the message never prints it
    // (it once named the database by its full URL).
    let in_url = cluster.url(
        "jobber:url-pass-xyz",
        "localhost",
        "tls_pw",
        "&sslmode=require",
    );
    let (ok, err) = tasks(&p, &in_url, &[]);
    assert!(!ok, "a wrong password in the URL was accepted");
    assert!(
        err.contains("password authentication failed") && !err.contains("url-pass-xyz"),
        "{err}"
    );
    // A password in the URL as well as the file: refused, both named.
    let both = cluster.url(
        "jobber:right-password",
        "localhost",
        "tls_pw",
        "&sslmode=require",
    );
    let (ok, err) = tasks(&p, &both, &[("JOBSLOT_DATABASE_PASSWORD_FILE", &secret)]);
    assert!(!ok, "two passwords were accepted");
    assert!(
        err.contains("JOBSLOT_DATABASE_PASSWORD_FILE") && !err.contains("right-password"),
        "{err}"
    );
    // An unreadable file is named.
    let (ok, err) = tasks(
        &p,
        &url,
        &[("JOBSLOT_DATABASE_PASSWORD_FILE", "/nonexistent/secret")],
    );
    assert!(!ok && err.contains("/nonexistent/secret"), "{err}");
}
