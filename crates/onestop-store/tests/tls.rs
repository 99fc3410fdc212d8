//! TLS to PostgreSQL: `sslmode=require` with the CA's certificate connects encrypted and
//! verifies the server; a server that the given CA did not sign is refused at once; a client
//! certificate logs the store in where the server asks for one. Runs on the throw-away server
//! of `cargo xtask test`, which has TLS on and exports its CA and a client certificate.

mod support;

use onestop_store::Store;

/// The PEM certificate of the CA that signed the test server's (`cargo xtask test` sets it).
const CA: &str = "ONESTOP_TEST_POSTGRES_CA";

/// What the store's own connections say of their encryption (`pg_stat_ssl`).
async fn encrypted(store: &Store) -> Vec<String> {
    let sql = "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let read = store.read(move |tx| tx.query_strings(sql)).await.expect("read");
    let written = store.write(move |tx| tx.query_strings(sql)).await.expect("written");
    assert_eq!(read, written, "the writer's connections are the readers' kind");
    read
}

fn open(url: String) -> Result<Store, String> {
    // The synchronous client must not run on an async worker thread: `open` runs on its own.
    std::thread::spawn(move || Store::open(&url).map_err(|e| e.to_string()))
        .join()
        .expect("open ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_connects_encrypted_verifies_the_server_and_refuses_another_ca() {
    let (Some(server), Some(ca)) = (support::postgres_server(), std::env::var_os(CA)) else {
        eprintln!("skipped: no PostgreSQL with TLS ({CA} unset)");
        return;
    };
    let ca = ca.to_string_lossy().into_owned();
    let url = tokio::task::spawn_blocking(move || support::fresh_database(&server))
        .await
        .expect("a database");

    // libpq's `verify-full` is read as `require`, which always verifies chain and host.
    let store = open(format!("{url}?sslmode=verify-full&sslrootcert={ca}")).expect("opened");
    assert_eq!(encrypted(&store).await, ["true"]);
    // Without `sslmode`, in the clear, as before.
    let plain = open(url.clone()).expect("opened");
    assert_eq!(encrypted(&plain).await, ["false"]);

    // A CA that did not sign the server's certificate: refused at once, with the reason.
    let dir = tempfile::tempdir().expect("dir");
    let other = dir.path().join("other-ca.pem");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).expect("signed").pem()).expect("written");
    let started = std::time::Instant::now();
    let refused = open(format!("{url}?sslmode=require&sslrootcert={}", other.display()));
    let error = refused.err().expect("an impostor is refused");
    assert!(error.contains("certificate"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "not after the pool's wait");
}

/// A client certificate and its key for the role `onestop_cert`, which the test server lets in
/// over TLS with that certificate and nothing else (`cargo xtask test` sets them).
const CLIENT_CERT: &str = "ONESTOP_TEST_POSTGRES_CLIENT_CERT";
const CLIENT_KEY: &str = "ONESTOP_TEST_POSTGRES_CLIENT_KEY";
const CERT_USER: &str = "onestop_cert";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_logs_the_store_in_and_none_is_refused_at_once() {
    let env = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (Some(server), Some(ca), Some(cert), Some(key)) =
        (support::postgres_server(), env(CA), env(CLIENT_CERT), env(CLIENT_KEY))
    else {
        eprintln!("skipped: no PostgreSQL with client certificates ({CLIENT_CERT} unset)");
        return;
    };
    // A database the certificate's role owns, made by the superuser of the suite's URL.
    let admin = server.clone();
    let url = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("superuser");
        let role = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{CERT_USER}') \
             THEN CREATE ROLE {CERT_USER} LOGIN; END IF; END $$"
        );
        client.batch_execute(&role).expect("role");
        let url = support::fresh_database(&admin);
        let name = url.rsplit('/').next().expect("a database name").to_owned();
        client.batch_execute(&format!("ALTER DATABASE {name} OWNER TO {CERT_USER}")).expect("own");
        client.batch_execute(&format!("GRANT ALL ON SCHEMA public TO {CERT_USER}")).expect("grant");
        url.replacen("://postgres@", &format!("://{CERT_USER}@"), 1)
    })
    .await
    .expect("a database");
    assert!(url.contains(CERT_USER), "{url}: the suite's URL names its superuser");

    let tls = format!("sslmode=verify-full&sslrootcert={ca}");
    let store = open(format!("{url}?{tls}&sslcert={cert}&sslkey={key}")).expect("opened");
    let sql = "SELECT current_user::text || ' ' || client_dn FROM pg_stat_ssl \
               WHERE pid = pg_backend_pid()";
    let seen = store.read(move |tx| tx.query_strings(sql)).await.expect("read");
    assert_eq!(seen, [format!("{CERT_USER} /CN={CERT_USER}")]);
    // The schema was applied by the certificate's role: the store works as any other.
    let counted = store.write(|tx| tx.query_strings("SELECT count(*)::text FROM persons")).await;
    assert_eq!(counted.expect("written"), ["0"]);

    // Without the certificate the server says no, and the open says why at once.
    let started = std::time::Instant::now();
    let error = open(format!("{url}?{tls}")).err().expect("refused without a certificate");
    assert!(error.contains("requires a valid client certificate"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "not after the pool's wait");
    // In the clear, not even asked: the role may log in over TLS only.
    let error = open(url.clone()).err().expect("refused in the clear");
    assert!(error.contains(CERT_USER) && error.contains("no encryption"), "{error}");
}
