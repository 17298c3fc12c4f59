//! Per-connection hygiene: how many connections one address may hold, and
//! closing connections that sit idle.
//!
//! - [`PerIp`] counts open connections by client address (IPv6 by /64, the
//!   block one subscriber usually gets) and refuses one over the limit.
//! - [`IdleIo`] wraps a socket: when the connection has had no request in
//!   flight and has sent no byte since its last response (or since it
//!   opened) for the idle timeout, its next read reports end-of-file, and
//!   hyper closes the connection as if the client had. A request being
//!   handled, or a head arriving slowly, is never cut by it (the header and
//!   body timeouts govern those). A client that does not read its response
//!   within the idle timeout may lose it, which only a broken client does.
//!   [`Activity`] is the state the socket wrapper and the request handler
//!   share.
//! - [`Open`] keeps the connections a listener has open, so that when all
//!   `server.max_connections` are taken a newcomer can take the place of
//!   one that is not serving a request ([`Open::evict_one`]) instead of
//!   waiting in the kernel's backlog behind a flood of silent or slow
//!   sockets.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Open connections per client address, with a cap.
///
/// A std `Mutex` is right: it is held for one map operation, never across
/// an `.await`. The map holds only addresses with a connection open, so it
/// is bounded by `server.max_connections`.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// At most `limit` connections per address.
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at the limit.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = bucket(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            key,
        })
    }

    /// Connections open from `ip` now (for tests and diagnostics).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&bucket(ip)).copied().unwrap_or(0)
    }
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerIp>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut e) = open.entry(self.key) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// The key an address is counted under: IPv4 as is (mapped IPv6 too), other
/// IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::from(u64::MAX))).into()),
        },
        v4 => v4,
    }
}

/// What one connection is doing, shared by its socket and its handler.
#[derive(Debug)]
pub struct Activity {
    /// When the connection opened; times below are counted from here.
    born: Instant,
    /// Requests being handled now (0 or 1 over HTTP/1.1).
    busy: AtomicUsize,
    /// Whether a byte has arrived since the last response was ready.
    heard: AtomicBool,
    /// Milliseconds after `born` when the last request finished.
    idle_since_ms: AtomicU64,
    /// Requests finished on this connection.
    served: AtomicU64,
    /// Whether the idle timeout closed it.
    idled: AtomicBool,
}

impl Activity {
    /// A connection that just opened (idle from now).
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            busy: AtomicUsize::new(0),
            heard: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            served: AtomicU64::new(0),
            idled: AtomicBool::new(false),
        })
    }

    /// Whether a request is being handled now.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    /// Whether the idle timeout ended the connection.
    pub fn idled(&self) -> bool {
        self.idled.load(Ordering::SeqCst)
    }

    /// Mark a request in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && !self.heard.load(Ordering::SeqCst)
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst)) + idle
    }
}

/// A request in flight; dropping it starts the idle clock again.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.store(ms, Ordering::SeqCst);
        a.heard.store(false, Ordering::SeqCst);
        a.served.fetch_add(1, Ordering::SeqCst);
        a.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A socket that reports end-of-file once its connection has been idle for
/// `idle` (see the module doc).
#[derive(Debug)]
pub struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, activity: Arc<Activity>, idle: Duration) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(activity.idle_deadline(idle)));
        IdleIo {
            inner,
            activity,
            idle,
            timer,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.heard.store(true, Ordering::SeqCst);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.activity.is_idle() => {
                let deadline = this.activity.idle_deadline(this.idle);
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    // Idle too long: read nothing, which reads as the end.
                    Poll::Ready(()) => {
                        this.activity.idled.store(true, Ordering::SeqCst);
                        Poll::Ready(Ok(()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connections one listener has open, for making room at
/// `server.max_connections`.
///
/// A std `Mutex` is right: it is held for one map operation or one scan of
/// at most `max_connections` entries, never across an `.await`.
#[derive(Debug, Default)]
pub struct Open {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Tracked>>>,
}

/// One open connection as [`Open`] sees it.
#[derive(Debug)]
struct Tracked {
    activity: Arc<Activity>,
    /// Told when the connection is chosen to make room.
    evict: Notify,
    /// Chosen and not yet closed (or declined): not chosen again.
    evicting: AtomicBool,
}

impl Open {
    /// No connections yet.
    pub fn new() -> Arc<Open> {
        Arc::new(Open::default())
    }

    /// Track a connection until the returned guard drops.
    pub fn register(self: &Arc<Self>, activity: Arc<Activity>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked {
            activity,
            evict: Notify::new(),
            evicting: AtomicBool::new(false),
        });
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tracked.clone());
        Registered {
            owner: self.clone(),
            id,
            tracked,
        }
    }

    /// Tell one connection that is not serving a request to close, to make
    /// room for a newcomer: one that has never finished a request (still
    /// reading its first head: a slow head, or silence since it opened),
    /// the oldest first; else the keep-alive one idle longest. `false` when
    /// every connection is serving a request (or already told).
    pub fn evict_one(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = conns
            .values()
            .filter(|t| !t.activity.is_busy() && !t.evicting.load(Ordering::SeqCst))
            .min_by_key(|t| {
                let a = &t.activity;
                if a.served.load(Ordering::SeqCst) == 0 {
                    (0u8, a.born)
                } else {
                    let idle_since = Duration::from_millis(a.idle_since_ms.load(Ordering::SeqCst));
                    (1u8, a.born + idle_since)
                }
            });
        match victim {
            Some(t) => {
                t.evicting.store(true, Ordering::SeqCst);
                t.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Connections open now (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection tracked by [`Open`]; dropping it forgets the connection.
#[derive(Debug)]
pub struct Registered {
    owner: Arc<Open>,
    id: u64,
    tracked: Arc<Tracked>,
}

impl Registered {
    /// Resolves when the connection was chosen to make room. Its task
    /// closes it then, unless a request began in the meantime
    /// ([`Registered::decline`]).
    pub async fn evicted(&self) {
        self.tracked.evict.notified().await;
    }

    /// A request began after all: the connection stays, and may be chosen
    /// again later.
    pub fn decline(&self) {
        self.tracked.evicting.store(false, Ordering::SeqCst);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.owner
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_at_most_its_limit_and_slots_come_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = per_ip.try_open(a).unwrap();
        let _s2 = per_ip.try_open(a).unwrap();
        assert!(per_ip.try_open(a).is_none());
        assert!(per_ip.try_open(b).is_some());
        drop(s1);
        assert!(per_ip.try_open(a).is_some());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let per_ip = PerIp::new(1);
        let _s = per_ip.try_open("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            per_ip
                .try_open("2001:db8:1:2::9".parse().unwrap())
                .is_none()
        );
        assert!(
            per_ip
                .try_open("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
        assert_eq!(per_ip.open_from("2001:db8:1:2::5".parse().unwrap()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_socket_reads_as_closed_but_a_busy_one_does_not() {
        use tokio::io::AsyncReadExt;
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = IdleIo::new(server, activity.clone(), Duration::from_secs(2));
        let busy = activity.begin();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf)).await;
        assert!(read.is_err(), "a request in flight is not cut");
        drop(busy);
        let started = Instant::now();
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn room_is_made_from_first_heads_oldest_first_then_the_longest_idle() {
        let open = Open::new();
        let kept_alive_long = Activity::new();
        drop(kept_alive_long.begin());
        tokio::time::advance(Duration::from_secs(1)).await;
        let kept_alive_short = Activity::new();
        let old_first = Activity::new();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(kept_alive_short.begin());
        let new_first = Activity::new();
        let serving = Activity::new();
        let _busy = serving.begin();
        let regs: Vec<Registered> = [
            &kept_alive_long,
            &kept_alive_short,
            &old_first,
            &new_first,
            &serving,
        ]
        .into_iter()
        .map(|a| open.register(a.clone()))
        .collect();
        let mut order: Vec<usize> = Vec::new();
        for _ in 0..4 {
            assert!(open.evict_one());
            let i = (0..regs.len())
                .find(|i| !order.contains(i) && regs[*i].tracked.evicting.load(Ordering::SeqCst))
                .unwrap();
            order.push(i);
        }
        assert_eq!(order, [2, 3, 0, 1]);
        assert!(
            !open.evict_one(),
            "a connection serving a request is never chosen"
        );
        drop(regs);
        assert!(open.is_empty());
    }
}
