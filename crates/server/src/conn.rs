//! Serving HTTP/1.1 connections so that slow or idle clients cannot hold them: the accept loop of `keyward serve`
//! and `keyward gateway`. A request's head must arrive within `header` of the connection opening (or of its first
//! byte on a kept-alive connection), its body within `body` of the head, a kept-alive connection may sit idle for
//! `idle`, and a response the client stops reading ends the connection after `write`. Below the router: it knows
//! nothing of what is served. Connections come from TCP, or from a Unix socket (`keyward agent`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::Service as _;

/// The bounds on a connection's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a new connection, or from the first byte of the next request on a kept-alive one, to the end of the
    /// request's head.
    pub header: Duration,
    /// From the end of a request's head to the end of its body.
    pub body: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle: Duration,
    /// How long a response may wait for the client to read it.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            // Longer than the 60 s after which proxies and load balancers usually drop an idle upstream connection,
            // so they close first and never send a request on a connection this end is closing.
            idle: Duration::from_secs(75),
            write: Duration::from_secs(30),
        }
    }
}

/// Where [`serve`] accepts connections: a TCP listener, or a Unix socket.
pub trait Listener: Send {
    /// A connection's byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection, and the peer's address when it has one. A Unix socket's peer has none: its requests
    /// carry no `ConnectInfo`.
    fn accept_stream(
        &self,
    ) -> impl Future<Output = io::Result<(Self::Stream, Option<SocketAddr>)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    async fn accept_stream(&self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (tcp, peer) = self.accept().await?;
        // Each response leaves in one write; Nagle's algorithm would only hold back the rare one that does not.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        Ok((tcp, Some(peer)))
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept_stream(&self) -> io::Result<(tokio::net::UnixStream, Option<SocketAddr>)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, None))
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight finish (idle
/// connections close at once). Each request over TCP carries its peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve<L: Listener>(
    listener: L,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept_stream() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let pace = Arc::new(Pace::new(timeouts));
        let service = ConnService {
            router: router.clone(),
            peer,
            pace: pace.clone(),
        };
        let io = TokioIo::new(Guarded {
            tcp,
            pace,
            read_timer: None,
            write_timer: None,
            write_stalled: None,
        });
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, ?peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Requests in flight finish, for as long as a slow one may take here; past that the connections are dropped.
    let drain = timeouts.header + timeouts.body + timeouts.write;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = drain.as_secs(),
            "connections still open at shutdown were dropped"
        );
    }
}

/// Where a connection stands, which decides how long a read may wait.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request's head, since the connection opened or the head's first byte arrived.
    Head(Instant),
    /// A request is being handled or answered: its body has a deadline of its own, and nothing else waits on a
    /// read.
    Request,
    /// Waiting for the next request since the last response ended.
    Idle(Instant),
}

/// A connection's phase, shared by its reader (`Guarded`) and its requests (`ConnService`, `Answer`).
#[derive(Debug)]
struct Pace {
    timeouts: Timeouts,
    state: Mutex<PaceState>,
}

#[derive(Debug)]
struct PaceState {
    phase: Phase,
    /// When bytes of the next request arrived while this one ran (pipelining): its head's clock starts then.
    next_head: Option<Instant>,
    /// A read left pending while a request ran, with no deadline: woken when the request ends, so the idle
    /// deadline starts to count even if no byte ever arrives.
    reader: Option<Waker>,
}

impl Pace {
    fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            state: Mutex::new(PaceState {
                phase: Phase::Head(Instant::now()),
                next_head: None,
                reader: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request's head has arrived.
    fn request(&self) {
        let mut state = self.lock();
        state.phase = Phase::Request;
        state.next_head = None;
    }

    /// The request's answer is sent (or dropped with its connection): the connection is idle from now, or reading
    /// the next head when its first bytes came early.
    fn answered(&self) {
        let mut state = self.lock();
        if let Phase::Request = state.phase {
            state.phase = match state.next_head.take() {
                Some(since) => Phase::Head(since),
                None => Phase::Idle(Instant::now()),
            };
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }

    /// Bytes arrived: on an idle connection they start a request's head, and its clock; during a request they may
    /// be the next one's (pipelining), whose clock starts now too.
    fn arrived(&self) {
        let mut state = self.lock();
        match state.phase {
            Phase::Idle(_) => state.phase = Phase::Head(Instant::now()),
            Phase::Request if state.next_head.is_none() => state.next_head = Some(Instant::now()),
            _ => {}
        }
    }

    /// Until when a pending read may wait, and whether running out of that time is the end of an idle
    /// connection (a quiet close) rather than a head that came too slowly (an error). Without a deadline the
    /// reader's waker is kept, for `answered`.
    fn read_deadline(&self, cx: &Context<'_>) -> Option<(Instant, bool)> {
        let mut state = self.lock();
        match state.phase {
            Phase::Head(since) => Some((since + self.timeouts.header, false)),
            Phase::Request => {
                match &mut state.reader {
                    Some(w) => w.clone_from(cx.waker()),
                    None => state.reader = Some(cx.waker().clone()),
                }
                None
            }
            Phase::Idle(since) => Some((since + self.timeouts.idle, true)),
        }
    }
}

/// Polls `timer` towards `deadline`, arming it only when it would fire too late: a timer that fires early is
/// moved on then, so a connection serving requests back to back does not reset a timer per request.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    let timer = timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
        timer.as_mut().reset(deadline);
    }
}

/// The connection's stream, with the read and write deadlines of its phase.
struct Guarded<S> {
    tcp: S,
    pace: Arc<Pace>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Since when writes have made no progress.
    write_stalled: Option<Instant>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.pace.arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.pace.read_deadline(cx) {
                Some((deadline, idle)) if expired(&mut this.read_timer, deadline, cx) => {
                    if idle {
                        // The end of the stream: hyper closes an idle connection quietly.
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the request head did not arrive in time",
                        )))
                    }
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl<S> Guarded<S> {
    /// A write that made progress clears the stall; one that did not starts or checks it.
    fn paced<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let since = *self.write_stalled.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.pace.timeouts.write, cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading the response",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.paced(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.paced(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_flush(cx);
        this.paced(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// One connection's requests: each gets the peer's address, a body with a deadline, and a response body that
/// marks the connection idle once it is sent.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: Option<SocketAddr>,
    pace: Arc<Pace>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.pace.request();
        let deadline = Instant::now() + self.pace.timeouts.body;
        let mut req = req.map(|incoming| BodyDeadline {
            incoming,
            deadline,
            timer: None,
        });
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let call = self.router.clone().call(req);
        let pace = self.pace.clone();
        Box::pin(async move {
            let response = call.await.unwrap_or_else(|never| match never {});
            Ok(response.map(|inner| Body::new(Answer { inner, pace })))
        })
    }
}

/// The error a request body gives when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the time allowed")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `e`, or any error it was caused by, is a request body that did not arrive in time (how a handler
    /// tells a slow client, 408, from a body that could not be read for another reason).
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if c.is::<BodyTimedOut>() {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

/// A request body that must end by a deadline.
struct BodyDeadline {
    incoming: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl hyper::body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending if expired(&mut this.timer, this.deadline, cx) => {
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// A response body that marks its connection idle when it ends (or is dropped, when the connection goes).
struct Answer {
    inner: Body,
    pace: Arc<Pace>,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() {
            this.pace.answered();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // A body hyper sends whole without polling to its end (an empty one, a HEAD response) ends here.
        self.pace.answered();
    }
}
