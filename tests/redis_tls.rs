//! Redis over TLS (`rediss://`): a real `redis-server` listening only on a
//! TLS port with a certificate from a CA made by this test (`openssl`), and
//! the gateway trusting that CA through `store.tls_ca_file`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;
use common::redis::free_port;
use hotline::clock::Clock;
use hotline::store::Store;
use hotline::store::redis::{RedisOptions, RedisStore};

const FINAL: &str = "1*1*1*Station 5*0";

/// A TLS-only `redis-server`, killed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ca.pem`, and `server.pem`/`server.key` for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=hotline test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
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
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn start_tls_redis(dir: &Path) -> TlsRedis {
    let port = free_port();
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (apt-get install redis-server)");
    TlsRedis { port, child }
}

async fn connect(url: &str, ca: Option<Vec<u8>>) -> RedisStore {
    let opts = RedisOptions {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        tls_ca: ca,
    };
    RedisStore::connect_with(url, "tls", &opts)
        .await
        .expect("a single Redis connects lazily")
}

fn prefix_texts(full: &str) -> Vec<String> {
    let parts: Vec<&str> = full.split('*').collect();
    (0..=parts.len()).map(|n| parts[..n].join("*")).collect()
}

#[tokio::test]
async fn the_gateway_speaks_tls_to_a_redis_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let redis = start_tls_redis(dir.path());
    let url = format!("rediss://127.0.0.1:{}/", redis.port);
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();

    // The server needs a moment to listen: poll, bounded.
    let store = connect(&url, Some(ca.clone())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "TLS Redis answers PING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without the CA the certificate is not trusted: no connection.
    let untrusting = connect(&url, None).await;
    let refused = untrusting.ping().await.expect_err("unknown CA refused");
    assert!(
        refused.to_string().contains("certificate"),
        "refused for its certificate: {refused}"
    );

    // A whole USSD session through the gateway, `tls_ca_file` in its config.
    let spool = tempfile::tempdir().unwrap();
    let cfg = common::default_config().replace(
        "[store]\n",
        &format!(
            "[store]\nkey_prefix = \"tls\"\nspool_dir = {:?}\ntls_ca_file = {:?}\n",
            spool.path().display().to_string(),
            dir.path().join("ca.pem").display().to_string()
        ),
    );
    let gw = Gateway::start_with(&cfg, &[("HOTLINE_REDIS_URL", &url)], None, Clock::System).await;
    let mut last = String::new();
    for text in prefix_texts(FINAL) {
        let r = gw.ussd("ATUid_tls", "+996555300400", &text).await;
        assert_eq!(r.status, 200);
        last = r.body;
    }
    assert!(last.starts_with("END "), "{last}");
    let code = last
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .unwrap_or_else(|| panic!("no code in {last:?}"))
        .to_owned();
    let case = store.case_by_code(&code).await.unwrap();
    assert!(case.is_some(), "the case is in the TLS Redis");
    gw.stop().await;
}
