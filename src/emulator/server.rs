//! The accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, one task per
//! connection, and connections a request can drop with a TCP reset.
//!
//! hyper owns each socket while serving it, so the socket is wrapped in [`ResettableStream`]:
//! when a request fires its [`ConnKill`], the connection task drops the hyper connection and
//! the wrapper, on drop, sets `SO_LINGER` to zero so the close is an RST, as when a load
//! balancer resets a connection. Nothing is written to the socket first.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::gate::{ConnKill, Gate};

/// Serves `listener` until `shutdown` fires; then stops accepting and drops open connections.
pub(crate) fn spawn(listener: TcpListener, gate: Arc<Gate>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "emulator accept failed");
                    continue;
                }
            };
            tokio::spawn(serve(stream, gate.clone(), shutdown.clone()));
        }
    });
}

async fn serve(stream: TcpStream, gate: Arc<Gate>, shutdown: CancellationToken) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "emulator could not set nodelay");
    }
    let kill = ConnKill::default();
    let io = TokioIo::new(ResettableStream {
        stream,
        reset: kill.reset.clone(),
    });
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |req| {
            let gate = gate.clone();
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(gate.handle(req, &kill).await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "emulator connection ended with an error");
            }
        }
        () = kill.token.cancelled() => {}
        () = shutdown.cancelled() => {}
    }
}

/// A TCP stream that closes with RST instead of FIN once `reset` is set.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "emulator could not set linger");
            }
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
