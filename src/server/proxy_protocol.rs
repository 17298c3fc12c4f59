//! The PROXY protocol (HAProxy's, versions 1 and 2): a TCP proxy that does
//! not speak HTTP (HAProxy in `mode tcp`, AWS NLB, nginx `stream`) tells
//! the gateway the client's address in a short header before the first
//! request. With `server.proxy_protocol = true`, a connection from a peer
//! in `server.trusted_proxies` must start with one; the address in it is
//! then the connection's client address for per-address connection caps,
//! per-IP limits and `allow_ips` (and `X-Forwarded-For` is read only if that
//! address is itself a trusted proxy). A peer outside the list never gets
//! its header believed: for it, `PROXY …` is just a bad request.
//!
//! Formats (from HAProxy's `proxy-protocol.txt`):
//! - v1, one text line of at most 107 bytes:
//!   `PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n`, or `PROXY TCP6 …`, or
//!   `PROXY UNKNOWN …\r\n` (the peer's own address is used).
//! - v2, binary: the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, a version and
//!   command byte (`0x21` PROXY, `0x20` LOCAL: the proxy's own health check,
//!   the peer's address is used), a family byte (`0x11` TCP over IPv4,
//!   `0x21` TCP over IPv6; others are taken as LOCAL), a big-endian length,
//!   then the addresses and ports and optional TLVs (skipped).
//!
//! [`parse`] is pure and total (a property test below feeds it any bytes);
//! [`read`] reads a header off a socket within the header timeout, and the
//! bytes of the first request that arrived with it are handed back and
//! replayed by [`Prefixed`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, `\r\n` included.
const V1_MAX: usize = 107;
/// Longest v2 header accepted (16 fixed bytes and the addresses; TLVs of a
/// few hundred bytes at most in practice).
const V2_MAX: usize = 16 + 1024;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client's address, as the proxy saw it.
    Client(SocketAddr),
    /// No client (v2 LOCAL, v1 UNKNOWN, a family other than TCP): the
    /// connection is the proxy's own; its peer address stands.
    Local,
}

/// The result of [`parse`] on the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of `len` bytes.
    Done {
        /// What it says.
        source: Source,
        /// Its length: the request starts after it.
        len: usize,
    },
    /// Not enough bytes yet.
    Incomplete,
    /// Not a PROXY header, or a malformed one.
    Invalid(&'static str),
}

/// Parse a header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Parsed::Incomplete
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if n < 6 {
            Parsed::Incomplete
        } else {
            parse_v1(buf)
        };
    }
    Parsed::Invalid("the connection does not start with a PROXY header")
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("PROXY v1 line longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Parsed::Invalid("PROXY v1 line longer than 107 bytes");
    }
    let Ok(line) = std::str::from_utf8(&buf[6..end]) else {
        return Parsed::Invalid("PROXY v1 line is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["UNKNOWN", ..] => Source::Local,
        [family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: Option<IpAddr> = match *family {
                "TCP4" => src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                _ => src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            };
            let port = sport.parse::<u16>().ok();
            match (ip, port) {
                (Some(ip), Some(port)) => Source::Client(SocketAddr::new(ip, port)),
                _ => return Parsed::Invalid("PROXY v1 address or port does not parse"),
            }
        }
        _ => return Parsed::Invalid("PROXY v1 line is malformed"),
    };
    Parsed::Done { source, len }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < 16 {
        return Parsed::Incomplete;
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("PROXY v2 version is not 2");
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Parsed::Invalid("PROXY v2 header too long");
    }
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    let addr = &buf[16..len];
    let source = match (ver_cmd & 0x0f, family) {
        (0x0, _) => Source::Local,
        (0x1, 0x11) if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            let port = u16::from_be_bytes([addr[8], addr[9]]);
            Source::Client(SocketAddr::new(IpAddr::V4(ip), port))
        }
        (0x1, 0x21) if addr.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let port = u16::from_be_bytes([addr[32], addr[33]]);
            Source::Client(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        (0x1, 0x11 | 0x21) => return Parsed::Invalid("PROXY v2 addresses too short"),
        // UDP, UNIX sockets, unspecified: no client address to use.
        (0x1, _) => Source::Local,
        _ => return Parsed::Invalid("PROXY v2 command is neither LOCAL nor PROXY"),
    };
    Parsed::Done { source, len }
}

/// Why a connection's header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not a header, or a malformed one.
    #[error("{0}")]
    Invalid(&'static str),
    /// It did not arrive in time.
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    /// The connection failed or closed first.
    #[error("connection closed before its PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Read a header from `stream` within `within`: what it says, and the bytes
/// read past it (the start of the first request).
///
/// # Errors
/// [`HeaderError`]: a malformed header, a timeout, or a closed connection.
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Result<(Source, Vec<u8>), HeaderError> {
    let work = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            match parse(&buf) {
                Parsed::Done { source, len } => return Ok((source, buf.split_off(len))),
                Parsed::Invalid(why) => return Err(HeaderError::Invalid(why)),
                Parsed::Incomplete => {}
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(HeaderError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| HeaderError::Timeout(within))?
}

/// A stream that first yields `prefix` (bytes read while looking for the
/// header), then reads from the inner stream.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` replayed first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(cmd: u8, family: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(family);
        h.extend_from_slice(&u16::try_from(addr.len()).unwrap().to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn v1_tcp4_and_tcp6_give_the_client() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nPOST /";
        assert_eq!(
            parse(line),
            Parsed::Done {
                source: Source::Client("203.0.113.7:56324".parse().unwrap()),
                len: 43
            }
        );
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
        assert_eq!(
            parse(line),
            Parsed::Done {
                source: Source::Client("[2001:db8::7]:4000".parse().unwrap()),
                len: line.len()
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Done {
                source: Source::Local,
                len: 15
            }
        );
    }

    #[test]
    fn v1_needs_the_whole_line_and_refuses_junk() {
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parsed::Incomplete);
        assert!(matches!(parse(b"POST / HTTP/1.1\r\n"), Parsed::Invalid(_)));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.400 10.0.0.1 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 10.0.0.1 70000 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse(&[b'P'; 200]), Parsed::Invalid(_)));
        let mut long = b"PROXY ".to_vec();
        long.extend(std::iter::repeat_n(b'1', 120));
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn v2_proxy_local_and_other_families() {
        let mut a4 = vec![203, 0, 113, 7, 10, 0, 0, 1];
        a4.extend_from_slice(&56324u16.to_be_bytes());
        a4.extend_from_slice(&443u16.to_be_bytes());
        let h = v2(1, 0x11, &a4);
        assert_eq!(
            parse(&h),
            Parsed::Done {
                source: Source::Client("203.0.113.7:56324".parse().unwrap()),
                len: 28
            }
        );
        assert_eq!(parse(&h[..20]), Parsed::Incomplete);
        assert_eq!(parse(&h[..5]), Parsed::Incomplete);
        let mut a6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        a6.extend_from_slice(&[0; 16]);
        a6.extend_from_slice(&4000u16.to_be_bytes());
        a6.extend_from_slice(&443u16.to_be_bytes());
        // A TLV after the addresses is skipped.
        a6.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]);
        let h = v2(1, 0x21, &a6);
        assert_eq!(
            parse(&h),
            Parsed::Done {
                source: Source::Client("[2001:db8::7]:4000".parse().unwrap()),
                len: h.len()
            }
        );
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Done {
                source: Source::Local,
                len: 16
            }
        );
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])),
            Parsed::Done {
                source: Source::Local,
                len: 232
            }
        );
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])),
            Parsed::Invalid(_)
        ));
        assert!(matches!(parse(&v2(7, 0x11, &a4)), Parsed::Invalid(_)));
        let mut bad_version = v2(1, 0x11, &a4);
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Parsed::Invalid(_)));
    }

    #[tokio::test]
    async fn read_hands_back_the_request_bytes_that_came_with_the_header() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"PROXY TCP4 203.0.113.7 10.0.0.1 5 443\r\nPOST / HTTP/1.1\r\n",
        )
        .await
        .unwrap();
        let (source, rest) = read(&mut server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(source, Source::Client("203.0.113.7:5".parse().unwrap()));
        let mut replay = Prefixed::new(rest, server);
        let mut got = vec![0u8; 17];
        replay.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"POST / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn read_gives_up_on_silence_and_on_junk() {
        let (_client, mut server) = tokio::io::duplex(64);
        assert!(matches!(
            read(&mut server, Duration::from_millis(20)).await,
            Err(HeaderError::Timeout(_))
        ));
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        assert!(matches!(
            read(&mut server, Duration::from_secs(1)).await,
            Err(HeaderError::Invalid(_))
        ));
    }

    proptest! {
        /// Any bytes: an answer, never a panic; a `Done` never claims more
        /// bytes than it was given.
        #[test]
        fn parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Parsed::Done { len, .. } = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        /// Any bytes after a v2 signature: the same.
        #[test]
        fn parse_is_total_after_the_v2_signature(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let mut b = V2_SIGNATURE.to_vec();
            b.extend(bytes);
            if let Parsed::Done { len, .. } = parse(&b) {
                prop_assert!(len <= b.len());
            }
        }

        /// A v1 line written for any IPv4 client parses back to it.
        #[test]
        fn v1_round_trips(a in any::<[u8; 4]>(), port in any::<u16>()) {
            let ip = Ipv4Addr::from(a);
            let line = format!("PROXY TCP4 {ip} 10.0.0.1 {port} 443\r\n");
            prop_assert_eq!(
                parse(line.as_bytes()),
                Parsed::Done {
                    source: Source::Client(SocketAddr::new(IpAddr::V4(ip), port)),
                    len: line.len()
                }
            );
        }
    }
}
