//! TLS to PostgreSQL: `sslmode=require` with the CA's certificate connects encrypted and
//! verifies the server; a server that the given CA did not sign is refused at once. Runs on the
//! throw-away server of `cargo xtask test`, which has TLS on and exports its CA.

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
