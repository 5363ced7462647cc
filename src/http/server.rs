//! The connection loop: hyper's HTTP/1 server under warp's filters, with what `warp::serve`
//! lacks on the open internet: a connection cap, a header-read timeout (slowloris), an idle
//! timeout for keep-alive and stalled readers, the TCP peer for `client_ip`, graceful drain.
//!
//! Timeouts are kept by a per-connection watchdog over an I/O wrapper that notes progress,
//! not by hyper's timer: hyper's header-read timer also runs while a keep-alive connection
//! waits for its next request, so it cannot tell "slow head" from "idle".

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use warp::{Filter, Reply};

use super::filters::{BodyTimeout, ClientIp, client_addr};
use super::media::FastMedia;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The limits the loop enforces, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout: Duration,
    /// No request in flight and no traffic for this long closes the connection.
    pub idle_timeout: Duration,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// A request body that sends nothing this long is cut off (enforced by the body readers).
    pub body_timeout: Duration,
}

/// Who may speak for the client (`server.trusted_proxies`).
pub type TrustedProxies = Arc<Vec<ipnet::IpNet>>;

impl Limits {
    /// The limits of a `[server]` section.
    pub fn from_config(c: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections,
            body_timeout: c.body_timeout,
        }
    }
}

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 86\r\n\r\n{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections; retry\"}}";

/// Serves `filter` on `listener` until `shutdown` resolves, then waits for open connections
/// to finish their requests (the caller bounds that wait). `/media/` GETs and HEADs go to
/// `media` when given, past the filter chain.
pub async fn serve<F, R>(
    listener: TcpListener,
    filter: F,
    media: Option<Arc<FastMedia>>,
    limits: Limits,
    trusted: TrustedProxies,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused();
            refuse(stream);
            continue;
        };
        let watcher = graceful.watcher();
        let svc = warp::service(filter.clone());
        let metrics = metrics.clone();
        let trusted = trusted.clone();
        let media = media.clone();
        tokio::spawn(async move {
            metrics.connection_opened();
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(Tracked {
                inner: stream,
                activity: activity.clone(),
            });
            let act = activity.clone();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let client = client_addr(peer.ip(), req.headers(), &trusted);
                let guard = act.begin_request();
                let fut = match &media {
                    Some(m) if FastMedia::takes(&req) => {
                        Either::Left(m.clone().call(req, client).map(Ok::<_, Infallible>))
                    }
                    _ => {
                        req.extensions_mut().insert(ClientIp(client));
                        req.extensions_mut()
                            .insert(BodyTimeout(limits.body_timeout));
                        let mut svc = svc.clone();
                        Either::Right(tower_service::Service::call(&mut svc, req))
                    }
                };
                async move {
                    let resp = fut.await;
                    drop(guard);
                    resp
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(64 * 1024)
                .serve_connection(io, service);
            let conn = watcher.watch(conn);
            tokio::select! {
                r = conn => {
                    // Clients drop connections all the time; never an ERROR line each.
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                }
                why = activity.watchdog(limits) => {
                    metrics.connection_timed_out(why);
                    tracing::debug!(%peer, reason = why, "connection closed by timeout");
                }
            }
            metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Over the cap: a short 503 so proxies and clients see why, then close at once. One
/// non-blocking write into a fresh socket's empty send buffer; nothing waits, so a connection
/// flood past the cap holds no task and no descriptor beyond this call.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
}

/// `EMFILE` and friends: wait a little for descriptors to free up instead of spinning.
async fn accept_error(e: io::Error) {
    use io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What one connection has been doing, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_io: AtomicU64,
    /// When the first byte of a request head arrived with no request in flight (0 = none).
    head_started: AtomicU64,
    in_flight: AtomicUsize,
}

/// Dropped when the handler has answered (the body may still be streaming).
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps 0 free to mean "unset".
        self.opened.elapsed().as_millis() as u64 + 1
    }

    fn touch(&self) {
        self.last_io.store(self.now_ms(), Ordering::Release);
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self
                .head_started
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        RequestGuard(self.clone())
    }

    /// Resolves with the reason once the connection has broken a limit.
    async fn watchdog(&self, limits: Limits) -> &'static str {
        let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // The handler runs; bodies are bounded by `server.body_timeout_secs` there.
                continue;
            }
            let now = self.now_ms();
            let head = self.head_started.load(Ordering::Acquire);
            if head != 0 {
                if now.saturating_sub(head) > limits.header_read_timeout.as_millis() as u64 {
                    return "header_read";
                }
                continue;
            }
            let last = self.last_io.load(Ordering::Acquire);
            if now.saturating_sub(last) > limits.idle_timeout.as_millis() as u64 {
                return "idle";
            }
        }
    }
}

/// The socket, noting every read and write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
