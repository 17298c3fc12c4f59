//! A Redis Cluster losing a master under load: three masters and three
//! replicas (real `redis-server`s on loopback), two gateway instances, USSD
//! sessions walked to the end while one master is killed with SIGKILL (its
//! connections reset) or frozen with SIGSTOP (its connections hang: every
//! call to it times out, as when a host drops off the network).
//!
//! Asserts that every session that was shown a code is exactly one case in
//! the store, and that sessions complete again once the replica is promoted
//! (within 15 s; the measured time is printed — see docs/redis.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Gateway;
use hotline::case::CaseData;
use hotline::store::redis::RedisStore;
use hotline::store::{BUCKETS, Store};

const FINAL: &str = "1*1*1*Station 5*0";
/// Callers walking sessions at once.
const CALLERS: usize = 8;
/// `cluster-node-timeout`, as in the set-up.
const NODE_TIMEOUT_MS: &str = "2000";

/// One cluster node, killed on drop.
struct Node {
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(port: u16) -> Node {
        let dir = tempfile::tempdir().unwrap();
        Node {
            port,
            child: Some(Self::spawn(port, dir.path())),
            _dir: dir,
        }
    }

    /// Start it again after [`Node::kill`]: same port, same folder (its
    /// `nodes.conf`: it rejoins as what it was), no data (no persistence).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a killed node");
        self.child = Some(Self::spawn(self.port, self._dir.path()));
    }

    fn spawn(port: u16, dir: &Path) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)")
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGSTOP: the process hangs with its sockets open, as a host that
    /// stops answering would; callers see timeouts, not resets.
    fn freeze(&mut self) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args(["-STOP", &c.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        }
    }

    /// SIGCONT: a frozen one goes on.
    fn thaw(&mut self) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        }
    }

    /// SIGKILL, as a crash would (also ends a frozen one).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &BTreeSet<u16>) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000
            && !taken.contains(&port)
            && !taken.contains(&(port + 10_000))
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

/// Poll `ok` every 100 ms until it holds, or panic after `within`.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Six nodes, three masters with one replica each, every replica in sync.
fn start_cluster() -> Vec<Node> {
    let mut taken = BTreeSet::new();
    let nodes: Vec<Node> = (0..6)
        .map(|_| {
            let p = free_cluster_port(&taken);
            taken.extend([p, p + 10_000]);
            Node::start(p)
        })
        .collect();
    for n in &nodes {
        wait_for("redis-server answers", Duration::from_secs(10), || {
            n.cli(&["ping"]).trim() == "PONG"
        });
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in &nodes {
        wait_for("cluster_state:ok", Duration::from_secs(20), || {
            n.cli(&["cluster", "info"]).contains("cluster_state:ok")
        });
    }
    for n in nodes.iter().filter(|n| !is_master(n)) {
        wait_for("replica in sync", Duration::from_secs(20), || {
            n.cli(&["info", "replication"])
                .contains("master_link_status:up")
        });
    }
    nodes
}

fn is_master(n: &Node) -> bool {
    n.cli(&["role"]).lines().next() == Some("master")
}

/// The masters (by index) and a `HOTLINE_REDIS_URL` naming them.
fn masters_and_url(nodes: &[Node]) -> (Vec<usize>, String) {
    let masters: Vec<usize> = (0..nodes.len()).filter(|i| is_master(&nodes[*i])).collect();
    let url = masters
        .iter()
        .map(|i| format!("redis://127.0.0.1:{}/", nodes[*i].port))
        .collect::<Vec<_>>()
        .join(",");
    (masters, url)
}

/// The node replicating master `victim`.
fn replica_of(nodes: &[Node], victim: usize) -> usize {
    (0..nodes.len())
        .find(|i| {
            let role = nodes[*i].cli(&["role"]);
            let mut l = role.lines();
            l.next() == Some("slave") && l.nth(1) == Some(nodes[victim].port.to_string().as_str())
        })
        .expect("the victim has a replica")
}

/// The slot ranges a master serves, from its `CLUSTER NODES` line.
fn slots_of(n: &Node) -> Vec<(u16, u16)> {
    let nodes = n.cli(&["cluster", "nodes"]);
    let me = nodes.lines().find(|l| l.contains("myself")).unwrap();
    me.split_whitespace()
        .skip(8)
        .filter_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// The buckets whose keys live on master `n`.
fn buckets_on(n: &Node, live: &Node, prefix: &str) -> BTreeSet<u16> {
    let ranges = slots_of(n);
    (0..BUCKETS)
        .filter(|b| {
            let key = format!("{prefix}:{{{b}}}:x");
            let slot: u16 = live
                .cli(&["cluster", "keyslot", &key])
                .trim()
                .parse()
                .unwrap();
            ranges.iter().any(|(a, z)| (*a..=*z).contains(&slot))
        })
        .collect()
}

fn prefix_texts(full: &str) -> Vec<String> {
    let parts: Vec<&str> = full.split('*').collect();
    (0..=parts.len()).map(|n| parts[..n].join("*")).collect()
}

fn code_in(screen: &str) -> Option<String> {
    screen
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .map(str::to_owned)
}

/// What became of one session.
#[derive(Debug, Clone)]
struct Session {
    phone: String,
    started: Instant,
    ended: Instant,
    /// The code she was shown, if any.
    code: Option<String>,
    /// How the session failed: hop and screen (no number in it).
    failure: Option<String>,
}

/// Walk one session to the end; `None` as code when any hop failed.
async fn walk(gw: &Gateway, id: &str, phone: &str) -> Session {
    let started = Instant::now();
    let texts = prefix_texts(FINAL);
    let mut code = None;
    let mut failure = None;
    for (i, text) in texts.iter().enumerate() {
        let r = gw.ussd(id, phone, text).await;
        let last = i + 1 == texts.len();
        let fine = r.status == 200 && r.body.starts_with(if last { "END " } else { "CON " });
        if !fine {
            failure = Some(format!(
                "hop {i}: {} {}",
                r.status,
                r.body.chars().take(40).collect::<String>()
            ));
            break;
        }
        if last {
            code = code_in(&r.body);
        }
    }
    Session {
        phone: phone.to_owned(),
        started,
        ended: Instant::now(),
        code,
        failure,
    }
}

/// Callers walk sessions, alternating between the instances, until `stop`.
async fn load(gws: Arc<[Gateway; 2]>, stop: Arc<AtomicBool>) -> Vec<Session> {
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let (gws, stop) = (gws.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let phone = format!("+99655{caller:02}{n:05}");
                let id = format!("ATUid_fo_{caller}_{n}");
                done.push(walk(&gws[n % 2], &id, &phone).await);
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every case in the store, by caller number.
async fn cases_by_caller(gw: &Gateway, store: &dyn Store) -> BTreeMap<String, Vec<String>> {
    let mut by_caller: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in 0..BUCKETS {
        for id in store.case_ids(b, false).await.unwrap() {
            let rec = store.case(b, &id).await.unwrap().unwrap();
            let plain = gw.app.deps.privacy.open(&rec.data).unwrap();
            let data: CaseData = serde_json::from_slice(&plain).unwrap();
            let caller = data.caller.map(|c| c.as_str().to_owned()).unwrap();
            by_caller.entry(caller).or_default().push(rec.code);
        }
    }
    by_caller
}

/// A gateway instance on the cluster. All load comes from one address, so
/// the per-IP limit is raised out of the way.
async fn start_gateway(url: &str, prefix: &str, spool: &Path) -> Gateway {
    let cfg = common::default_config()
        .replace("per_ip_per_second = 200", "per_ip_per_second = 100000")
        .replace("per_ip_burst = 400", "per_ip_burst = 100000")
        .replace(
            "[store]\n",
            &format!(
                "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
                spool.display().to_string()
            ),
        );
    assert!(
        cfg.contains("per_ip_burst = 100000"),
        "default config changed"
    );
    Gateway::start_with(
        &cfg,
        &[("HOTLINE_REDIS_URL", url)],
        None,
        hotline::clock::Clock::System,
    )
    .await
}

/// How the master fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL: connections reset, reconnects refused.
    Killed,
    /// SIGSTOP: connections hang; every call to it times out.
    Frozen,
}

/// One failover test at a time: each runs six Redis and two gateways.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_survived_and_every_code_shown_is_one_case() {
    failover(Fault::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_is_survived_and_every_code_shown_is_one_case() {
    failover(Fault::Frozen).await;
}

async fn failover(fault: Fault) {
    let _serial = SERIAL.lock().await;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hotline::store=info".into()),
        )
        .with_test_writer()
        .try_init();
    let mut nodes = start_cluster();
    let masters: Vec<usize> = (0..nodes.len()).filter(|i| is_master(&nodes[*i])).collect();
    assert_eq!(masters.len(), 3, "three masters");
    let url = masters
        .iter()
        .map(|i| format!("redis://127.0.0.1:{}/", nodes[*i].port))
        .collect::<Vec<_>>()
        .join(",");
    let prefix = "hlfo";
    let spool = tempfile::tempdir().unwrap();
    let a = start_gateway(&url, prefix, &spool.path().join("a")).await;
    let b = start_gateway(&url, prefix, &spool.path().join("b")).await;
    let gws = Arc::new([a, b]);

    let victim = masters[0];
    let live = masters[1];
    let dead_buckets = buckets_on(&nodes[victim], &nodes[live], prefix);
    eprintln!(
        "{fault:?}: master :{} serving buckets {dead_buckets:?}",
        nodes[victim].port
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(gws.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    match fault {
        Fault::Killed => nodes[victim].kill(),
        Fault::Frozen => nodes[victim].freeze(),
    }
    // Run on until the cluster has promoted the replica, then 6 s more; at
    // most 20 s.
    let promoted = Instant::now() + Duration::from_secs(20);
    let mut promoted_at = None;
    while Instant::now() < promoted {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let victim_addr = format!("127.0.0.1:{}@", nodes[victim].port);
        if promoted_at.is_none()
            && nodes[live]
                .cli(&["cluster", "nodes"])
                .lines()
                .filter(|l| l.contains("master") && !l.contains("fail"))
                .filter(|l| !l.contains(&victim_addr))
                .count()
                == 3
        {
            promoted_at = Some(killed_at.elapsed());
        }
        if promoted_at.is_some_and(|p| killed_at.elapsed() > p + Duration::from_secs(6)) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sessions = load_task.await.unwrap();

    let before: Vec<&Session> = sessions.iter().filter(|s| s.started < killed_at).collect();
    let after: Vec<&Session> = sessions.iter().filter(|s| s.started >= killed_at).collect();
    let failed_after_kill: Vec<&Session> = sessions
        .iter()
        .filter(|s| s.code.is_none() && s.ended >= killed_at)
        .collect();
    let mut by_second: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for s in &failed_after_kill {
        let sec = (s.ended - killed_at).as_secs();
        *by_second
            .entry((sec, s.failure.clone().unwrap_or_default()))
            .or_default() += 1;
    }
    eprintln!("failures by second after the kill: {by_second:#?}");
    let last_failure = failed_after_kill
        .iter()
        .map(|s| s.ended - killed_at)
        .max()
        .unwrap_or_default();
    let code_bucket = |c: &str| c.parse::<u16>().unwrap() % BUCKETS;
    let recovered_in_dead_shard = after
        .iter()
        .filter(|s| s.started >= killed_at + last_failure)
        .filter(|s| {
            s.code
                .as_deref()
                .is_some_and(|c| dead_buckets.contains(&code_bucket(c)))
        })
        .count();
    let first_dead_shard_success = after
        .iter()
        .filter(|s| {
            s.code
                .as_deref()
                .is_some_and(|c| dead_buckets.contains(&code_bucket(c)))
        })
        .map(|s| s.ended - killed_at)
        .min();

    // Every code shown is exactly one case (spooled ones replayed first).
    let shown: BTreeMap<String, String> = sessions
        .iter()
        .filter_map(|s| Some((s.phone.clone(), s.code.clone()?)))
        .collect();
    let store = RedisStore::connect(&url, prefix, Duration::from_secs(1), Duration::from_secs(2))
        .await
        .expect("the checking client connects to the surviving nodes");
    let mut cases;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) =
            tokio::time::timeout(Duration::from_secs(10), cases_by_caller(&gws[0], &store)).await
        {
            cases = c;
            if shown.keys().all(|p| cases.contains_key(p)) || Instant::now() > deadline {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lost: Vec<&String> = shown.keys().filter(|p| !cases.contains_key(*p)).collect();
    let duplicated: Vec<(&String, &Vec<String>)> =
        cases.iter().filter(|(_, c)| c.len() > 1).collect();
    let wrong_code: Vec<&String> = shown
        .iter()
        .filter(|(p, code)| cases.get(*p).is_some_and(|c| !c.contains(code)))
        .map(|(p, _)| p)
        .collect();
    let unshown = cases.keys().filter(|p| !shown.contains_key(*p)).count();
    eprintln!(
        "failover ({fault:?}): promoted {promoted_at:?} after the fault; last failed session ended {last_failure:?} \
         after the fault; first success in the dead master's buckets {first_dead_shard_success:?}; \
         sessions started before the fault {} ({} with a code), after {} ({} with a code, {} in the \
         dead master's buckets after the last failure); failed after the fault {}; codes shown {}; \
         cases found {}; lost {}; duplicated {}; cases whose code was not shown {unshown}; \
         topology rebuilds (checking client) {}",
        before.len(),
        before.iter().filter(|s| s.code.is_some()).count(),
        after.len(),
        after.iter().filter(|s| s.code.is_some()).count(),
        recovered_in_dead_shard,
        failed_after_kill.len(),
        shown.len(),
        shown.keys().filter(|p| cases.contains_key(*p)).count(),
        lost.len(),
        duplicated.len(),
        store.topology_rebuilds(),
    );
    assert!(lost.is_empty(), "codes shown but no case: {lost:?}");
    assert!(
        duplicated.is_empty(),
        "one caller, several cases: {duplicated:?}"
    );
    assert!(
        wrong_code.is_empty(),
        "case under another code: {wrong_code:?}"
    );
    assert!(promoted_at.is_some(), "the replica was promoted");
    assert!(
        last_failure < Duration::from_secs(15),
        "sessions fail {last_failure:?} after the kill"
    );
    assert!(
        recovered_in_dead_shard > 0,
        "sessions in the dead master's buckets complete again after the failover"
    );
    let gws = Arc::try_unwrap(gws).ok().expect("load finished");
    for gw in gws {
        gw.stop().await;
    }
}

/// Dispatch on a Redis Cluster, where a script's keys must share a slot:
/// the offer's claim reads its case's code in the case's slot (an
/// undeclared key of the same slot), the aggregator's id — a global key,
/// another slot — is written after the finish, off flags and covers are
/// read with one `MGET` of the global slot, a lawyer's `OK 4821` runs two
/// scripts in the code's slot, and her bare `STATUS` reads her index (global)
/// and then her case (its bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_and_a_lawyers_answers_work_across_the_clusters_slots() {
    use common::world::{AIDA, world_with};
    let _serial = SERIAL.lock().await;
    let nodes = start_cluster();
    let url = nodes
        .iter()
        .filter(|n| is_master(n))
        .map(|n| format!("redis://127.0.0.1:{}/", n.port))
        .collect::<Vec<_>>()
        .join(",");
    let w = world_with(&[("HOTLINE_REDIS_URL", url.as_str())]).await;
    let code = w.request("ATUid_cl1", "+996555771101").await;
    let offer = w.nth(AIDA, 1).await;
    assert!(offer.starts_with(&format!("{code} ")), "{offer}");
    assert!(offer.ends_with(&format!("NO {code}")), "{offer}");

    // The mock answers every send with the id ATXid_d: its lookup key
    // names the offer, written after the finish.
    let deps = &w.gw.app.deps;
    let key =
        hotline::store::keys::provider_id("africastalking", deps.privacy.pseudonym("ATXid_d"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let ours = loop {
        if let Some(v) = deps
            .store
            .get(None, &key, deps.clock.now_ms())
            .await
            .unwrap()
        {
            break String::from_utf8(v).unwrap();
        }
        assert!(Instant::now() < deadline, "the aggregator's id is recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        hotline::outbox::bucket_of(&ours).is_some(),
        "it names our message: {ours}"
    );

    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    w.wait_for(AIDA, 2).await;
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("aida")
    );
    w.lawyer_says(AIDA, "STATUS").await;
    let status = w.nth(AIDA, 3).await;
    assert!(status.contains(&format!("{code} ok")), "{status}");

    // Off call: her flag is read back with the others in one MGET.
    w.lawyer_says(AIDA, "OFF").await;
    w.wait_for(AIDA, 4).await;
    let d = w.gw.app.dispatcher().expect("dispatch is configured");
    d.set_off(Default::default());
    d.refresh_off().await.unwrap();
    assert!(d.off_set().contains("aida"), "her off flag is read back");

    // A bare DONE: her index in the global slot, her case in its own, the
    // change's mark (global) written right after it; the same delivery
    // again is a duplicate and sends nothing.
    let body = common::form(&[
        ("from", AIDA),
        ("to", "21212"),
        ("text", "DONE"),
        ("id", "cluster-done-1"),
    ]);
    let r = common::post_form(w.gw.public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let closed = w.nth(AIDA, 5).await;
    assert!(closed.contains(&code), "her DONE closed her case: {closed}");
    assert_eq!(
        w.case(&code).await.dispatch.status,
        hotline::dispatch::lifecycle::Status::Closed
    );
    let r = common::post_form(w.gw.public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        w.commands("done", "ok").await,
        1.0,
        "the retried DONE is a duplicate: it runs no command"
    );
    assert_eq!(w.to(AIDA).len(), 5, "{:?}", w.to(AIDA));
    w.gw.stop().await;
}

/// A failover to a replica that has none of its master's last writes: the
/// far end of asynchronous replication's window, where a master
/// acknowledges writes its replica never gets. Here the replica is killed,
/// the master goes on acknowledging cases alone, then dies; the replica
/// comes back (empty: no persistence) and takes the master's slots over
/// (`CLUSTER FAILOVER TAKEOVER`, as an operator would to end the outage).
/// Every case the master had lives only in this instance's memory of the
/// cases it recorded in the last hour: each is recorded again
/// under the code its caller was shown, and its offer goes out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_a_failover_took_back_are_recorded_again_under_their_codes() {
    use common::world::{AIDA, world_with};
    let _serial = SERIAL.lock().await;
    let mut nodes = start_cluster();
    let (masters, url) = masters_and_url(&nodes);
    let w = world_with(&[("HOTLINE_REDIS_URL", url.as_str())]).await;
    let store = w.gw.app.deps.store.clone();
    // The victim: the master serving the first case's bucket.
    let first = w.request("ATUid_lag_0", "+996555772000").await;
    w.wait_for(AIDA, 1).await;
    let bucket_of = |code: &str| code.parse::<u16>().unwrap() % BUCKETS;
    let victim = *masters
        .iter()
        .find(|i| {
            buckets_on(&nodes[**i], &nodes[masters[0]], "hotline").contains(&bucket_of(&first))
        })
        .expect("a master serves the first case's bucket");
    let replica = replica_of(&nodes, victim);

    // The replica dies; the master goes on acknowledging alone.
    nodes[replica].kill();
    let mut codes = vec![first];
    for i in 1..12 {
        codes.push(
            w.request(&format!("ATUid_lag_{i}"), &format!("+9965557720{i:02}"))
                .await,
        );
    }
    w.wait_for(AIDA, 12).await;
    let victim_buckets = buckets_on(&nodes[victim], &nodes[masters[0]], "hotline");
    eprintln!("victim serves buckets {victim_buckets:?}; codes {codes:?}");

    // The master dies; its replica comes back empty and takes over.
    nodes[victim].kill();
    nodes[replica].restart();
    wait_for("the replica answers", Duration::from_secs(10), || {
        nodes[replica].cli(&["ping"]).trim() == "PONG"
    });
    wait_for("the replica takes over", Duration::from_secs(30), || {
        if is_master(&nodes[replica]) {
            return true;
        }
        nodes[replica].cli(&["cluster", "failover", "takeover"]);
        std::thread::sleep(Duration::from_millis(400));
        is_master(&nodes[replica])
    });
    wait_for("cluster_state:ok", Duration::from_secs(30), || {
        nodes[replica]
            .cli(&["cluster", "info"])
            .contains("cluster_state:ok")
    });

    // Every code shown is her case again, under that code.
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let mut missing = Vec::new();
        for code in &codes {
            match tokio::time::timeout(Duration::from_secs(2), store.case_by_code(code)).await {
                Ok(Ok(Some(rec))) if rec.code == *code => {}
                other => missing.push(format!("{code}: {other:?}")),
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let restored = w.gw.metric("hotline_cases_restored_total").await;
    let in_victim = codes
        .iter()
        .filter(|c| victim_buckets.contains(&bucket_of(c)))
        .count();
    eprintln!(
        "{} of {} codes in the dead master's buckets; restored {restored}; missing {missing:?}",
        in_victim,
        codes.len()
    );
    assert!(
        missing.is_empty(),
        "codes shown whose case is gone: {missing:?}"
    );
    assert!(in_victim > 0, "some cases were on the dead master");
    assert!(
        restored >= in_victim as f64,
        "the dead master's cases were recorded again: {restored}"
    );
    // Their offers go out again (the first went out before the failover).
    let offers = w.wait_for(AIDA, 12 + in_victim).await;
    for code in codes
        .iter()
        .filter(|c| victim_buckets.contains(&bucket_of(c)))
    {
        let n = offers
            .iter()
            .filter(|o| o.starts_with(&format!("{code} ")))
            .count();
        assert!(
            n >= 2,
            "case {code} offered again after it was restored: {n}"
        );
    }
    w.gw.stop().await;
}

/// A failover the client follows without an error: a replica made master
/// by `CLUSTER FAILOVER TAKEOVER` while it lags (frozen for a moment, as a
/// busy host would be). redis-rs follows the `MOVED` itself, so no call
/// fails and nothing here used to notice; the writes the old master had
/// acknowledged and the replica never got were lost silently (Redis Cluster
/// audit: 9 women shown a code whose case was gone, a lawyer told "No
/// case"). The store watch now reads the slot map: a slot with another
/// master rechecks the cases of the last hour, and any it lost are
/// recorded again under their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_the_client_follows_without_an_error_is_rechecked() {
    use common::world::{AIDA, world_with};
    let _serial = SERIAL.lock().await;
    let mut nodes = start_cluster();
    let (masters, url) = masters_and_url(&nodes);
    let w = world_with(&[("HOTLINE_REDIS_URL", url.as_str())]).await;
    let store = w.gw.app.deps.store.clone();
    let watch = hotline::worker::StoreWatch::new(w.gw.app.deps.clone());
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(
            w.request(&format!("ATUid_tko_{i}"), &format!("+9965557730{i:02}"))
                .await,
        );
    }
    w.wait_for(AIDA, 6).await;
    watch.tick().await; // the slot map as it is
    let victim = masters[0];
    let replica = replica_of(&nodes, victim);
    let rechecked = || async {
        w.gw.metric("hotline_cases_rechecked_total").await
            + w.gw.metric("hotline_cases_restored_total").await
    };
    let before = rechecked().await;
    // The replica lags (frozen); the master acknowledges more cases alone;
    // then the replica takes over as it thaws.
    nodes[replica].freeze();
    for i in 6..12 {
        codes.push(
            w.request(&format!("ATUid_tko_{i}"), &format!("+9965557730{i:02}"))
                .await,
        );
    }
    let port = nodes[replica].port;
    let takeover = std::thread::spawn(move || {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "failover", "takeover"])
            .output()
    });
    std::thread::sleep(Duration::from_millis(300));
    nodes[replica].thaw();
    let _ = takeover.join();
    wait_for("the replica takes over", Duration::from_secs(30), || {
        is_master(&nodes[replica])
    });
    // Nothing failed, yet the watch sees the new master and every case of
    // the last hour is rechecked; a lost one comes back under its code.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rechecked().await < before + codes.len() as f64 {
        assert!(
            Instant::now() < deadline,
            "the failover was noticed: rechecked {} of {}",
            rechecked().await - before,
            codes.len()
        );
        watch.tick().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut missing = Vec::new();
    for code in &codes {
        match tokio::time::timeout(Duration::from_secs(2), store.case_by_code(code)).await {
            Ok(Ok(Some(rec))) if rec.code == *code => {}
            other => missing.push(format!("{code}: {other:?}")),
        }
    }
    eprintln!(
        "restored {} of {} codes",
        w.gw.metric("hotline_cases_restored_total").await,
        codes.len()
    );
    assert!(
        missing.is_empty(),
        "codes shown whose case is gone: {missing:?}"
    );
    w.gw.stop().await;
}

/// One node of a cluster in `HOTLINE_REDIS_URL` is enough: the gateway
/// recognises a cluster node at start (`CLUSTER SLOTS`) and follows the
/// slot map. Before, it took the node for a single Redis: every call for
/// another master's slots failed with `MOVED`, menus went on offline and
/// cases waited in the spool for good, while `/readyz` said ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_in_the_url_is_recognised_as_a_cluster() {
    use common::world::{AIDA, world_with};
    let _serial = SERIAL.lock().await;
    let nodes = start_cluster();
    let master = nodes.iter().find(|n| is_master(n)).expect("a master");
    let url = format!("redis://127.0.0.1:{}/", master.port);
    let w = world_with(&[("HOTLINE_REDIS_URL", url.as_str())]).await;
    let mut buckets = BTreeSet::new();
    for i in 0..8 {
        let code = w
            .request(&format!("ATUid_one_{i}"), &format!("+9965557730{i:02}"))
            .await;
        buckets.insert(code.parse::<u16>().unwrap() % BUCKETS);
    }
    // Every case's offer went out: each was recorded, in its own slot.
    w.wait_for(AIDA, 8).await;
    assert!(buckets.len() >= 4, "cases across the masters: {buckets:?}");
    assert_eq!(w.gw.metric("hotline_spool_pending").await, 0.0);
    assert_eq!(w.gw.metric("hotline_cases_spooled_total").await, 0.0);
    w.gw.stop().await;
}

/// A master lost with its replica leaves a third of the slots without a
/// node while the rest answer. Before, the store watch read one slot's
/// sentinel per round and any success (a woman in a live slot, `/readyz`)
/// set `hotline_store_up` back to 1: without traffic to the dead slots
/// nothing paged. Now every round reads every slot, and the gauge stays 0
/// while any slot is gone; `/readyz` stays ready (the live slots' women
/// are served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_lost_with_its_replica_reads_as_down_without_traffic() {
    let _serial = SERIAL.lock().await;
    let mut nodes = start_cluster();
    let url = nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}/", n.port))
        .collect::<Vec<_>>()
        .join(",");
    let spool = tempfile::tempdir().unwrap();
    let prefix = common::redis::unique_prefix("partial");
    let gw = start_gateway(&url, &prefix, spool.path()).await;
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    assert!(watch.tick().await, "every slot answers");
    assert!(!gw.app.deps.store.degraded());
    assert_eq!(gw.metric("hotline_store_up").await, 1.0);
    // A master that does not serve the global slot (`/readyz` reads it).
    let global: u16 = nodes[0]
        .cli(&["cluster", "keyslot", "{g}"])
        .trim()
        .parse()
        .unwrap();
    let victim = nodes
        .iter()
        .position(|n| is_master(n) && !slots_of(n).iter().any(|(a, z)| (*a..=*z).contains(&global)))
        .expect("a master without the global slot");
    let vport = nodes[victim].port;
    let replica = nodes
        .iter()
        .position(|n| {
            !is_master(n)
                && n.cli(&["info", "replication"])
                    .contains(&format!("master_port:{vport}"))
        })
        .expect("the victim's replica");
    nodes[replica].kill();
    nodes[victim].kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        watch.tick().await;
        if gw.app.deps.store.degraded() && gw.metric("hotline_store_up").await == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lost slots were never noticed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..3 {
        assert!(!watch.tick().await, "each round sees the lost slots");
    }
    // A ready check does not hide it. With Redis's default
    // `cluster-require-full-coverage yes` the cluster refuses every key
    // once it has given the slots up (`cluster_state:fail`), and `/readyz`
    // says so: a node's `PONG` said "ready" through the whole outage.
    let live = nodes
        .iter()
        .find(|n| n.child.is_some())
        .expect("a live node");
    wait_for("cluster_state:fail", Duration::from_secs(30), || {
        live.cli(&["cluster", "info"])
            .contains("cluster_state:fail")
    });
    let ready = common::request(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body, "store unavailable\n");
    assert_eq!(gw.metric("hotline_store_up").await, 0.0);
    // Where the cluster serves the slots it has (full coverage off), the
    // live slots' callers are served and `/readyz` stays ready, while the
    // gauge stays 0 (the store watch sees the lost slots).
    for n in nodes.iter().filter(|n| n.child.is_some()) {
        n.cli(&["config", "set", "cluster-require-full-coverage", "no"]);
    }
    wait_for("cluster_state:ok", Duration::from_secs(30), || {
        live.cli(&["cluster", "info"]).contains("cluster_state:ok")
    });
    for _ in 0..3 {
        let ready = common::request(gw.admin, "GET", "/readyz", &[], b"").await;
        assert_eq!(ready.status, 200, "live slots are served: {}", ready.body);
        assert!(!watch.tick().await);
        assert_eq!(gw.metric("hotline_store_up").await, 0.0, "not hidden");
    }
    gw.stop().await;
}
